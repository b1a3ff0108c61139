package server

import (
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// The request path parses and builds STUN by hand: it runs once per packet
// and must not allocate. wire_test.go checks every byte against pion/stun.

const (
	headerSize     = 20
	magicCookie    = 0x2112A442
	fingerprintXOR = 0x5354554e

	typeBindingRequest = 0x0001
	typeBindingSuccess = 0x0101
	typeBindingError   = 0x0111

	attrMappedAddress     = 0x0001
	attrResponseAddress   = 0x0002 // RFC 3489 only; unsupported (it reflects traffic elsewhere)
	attrChangeRequest     = 0x0003
	attrSourceAddress     = 0x0004 // RFC 3489 name of RESPONSE-ORIGIN
	attrChangedAddress    = 0x0005 // RFC 3489 name of OTHER-ADDRESS
	attrUsername          = 0x0006
	attrMessageIntegrity  = 0x0008
	attrErrorCode         = 0x0009
	attrUnknownAttributes = 0x000A
	attrRealm             = 0x0014
	attrNonce             = 0x0015
	attrMISHA256          = 0x001C
	attrPasswordAlgorithm = 0x001D
	attrUserhash          = 0x001E
	attrXORMappedAddress  = 0x0020
	attrPriority          = 0x0024
	attrUseCandidate      = 0x0025
	attrPadding           = 0x0026
	attrResponsePort      = 0x0027
	attrSoftware          = 0x8022
	attrFingerprint       = 0x8028
	attrResponseOrigin    = 0x802B
	attrOtherAddress      = 0x802C

	// CHANGE-REQUEST flags (RFC 5780 section 7.2).
	changeIP   = 0x04
	changePort = 0x02

	// maxUnknown bounds the UNKNOWN-ATTRIBUTES list we echo back, so a
	// request stuffed with unknown attributes cannot grow our answer.
	maxUnknown = 8
)

// dropReason says why a packet got no answer; it doubles as a metrics label.
type dropReason uint8

const (
	dropNone        dropReason = iota
	dropNotSTUN                // not a STUN header, or the length does not match the datagram
	dropNotRequest             // STUN, but not a Binding request (responses, indications, other methods)
	dropMalformed              // broken attribute layout or a known attribute with a wrong length
	dropFingerprint            // FINGERPRINT present but wrong
	dropTooLarge               // bigger than our receive buffer
	dropRateLimited            // the source exceeded its request rate
	dropSendError              // the kernel refused to send the answer
	numDropReasons
)

var dropNames = [numDropReasons]string{
	dropNone:        "none",
	dropNotSTUN:     "not_stun",
	dropNotRequest:  "not_binding_request",
	dropMalformed:   "malformed",
	dropFingerprint: "bad_fingerprint",
	dropTooLarge:    "too_large",
	dropRateLimited: "rate_limited",
	dropSendError:   "send_error",
}

func (d dropReason) String() string { return dropNames[d] }

// request is what the server needs from a Binding request. It holds no
// reference into the packet buffer.
type request struct {
	legacy      bool     // RFC 3489: no magic cookie
	id          [16]byte // header bytes 4..20: cookie and transaction ID, or the RFC 3489 ID
	hasChange   bool
	change      uint32 // CHANGE-REQUEST flags, masked to changeIP|changePort
	hasRespPort bool
	respPort    uint16
	padLen      int // PADDING value length; -1 when absent
	fingerprint bool
	nUnknown    int
	unknown     [maxUnknown]uint16
}

// parseRequest validates b as a Binding request and fills r. Anything that
// is not a well-formed Binding request yields a drop reason: the server
// never answers garbage, so a spoofed source gains nothing from sending it.
func parseRequest(b []byte, r *request) dropReason {
	if len(b) < headerSize || b[0]&0xC0 != 0 {
		return dropNotSTUN
	}
	mlen := int(binary.BigEndian.Uint16(b[2:4]))
	if mlen%4 != 0 || headerSize+mlen != len(b) {
		return dropNotSTUN
	}
	if binary.BigEndian.Uint16(b[0:2]) != typeBindingRequest {
		return dropNotRequest
	}
	*r = request{padLen: -1}
	r.legacy = binary.BigEndian.Uint32(b[4:8]) != magicCookie
	copy(r.id[:], b[4:headerSize])

	afterIntegrity := false
	for off := headerSize; off < len(b); {
		if r.fingerprint {
			return dropMalformed // FINGERPRINT must be last
		}
		if len(b)-off < 4 {
			return dropMalformed
		}
		t := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		v := off + 4
		next := v + (l+3)&^3
		if next > len(b) {
			return dropMalformed
		}
		switch {
		case t == attrFingerprint:
			// Checked even without the magic cookie: no RFC 3489 client
			// sends it, so a bad one means corruption, not an old client.
			if l != 4 {
				return dropMalformed
			}
			want := crc32.ChecksumIEEE(b[:off]) ^ fingerprintXOR
			if binary.BigEndian.Uint32(b[v:]) != want {
				return dropFingerprint
			}
			r.fingerprint = true
		case t == attrMessageIntegrity || t == attrMISHA256:
			// No credentials here: integrity is not checked, and what
			// follows it (except FINGERPRINT) must be ignored (RFC 8489 14.5).
			afterIntegrity = true
		case afterIntegrity:
		case t == attrChangeRequest:
			if l != 4 {
				return dropMalformed
			}
			if !r.hasChange { // only the first occurrence counts
				r.hasChange = true
				r.change = binary.BigEndian.Uint32(b[v:]) & (changeIP | changePort)
			}
		case t == attrResponsePort:
			// stuntman writes length 2, coturn length 4: accept both.
			if l != 2 && l != 4 {
				return dropMalformed
			}
			if !r.hasRespPort {
				r.hasRespPort = true
				r.respPort = binary.BigEndian.Uint16(b[v:])
			}
		case t == attrPadding:
			if r.padLen < 0 {
				r.padLen = l
			}
		case t < 0x8000 && !ignoredRequired(t):
			// Comprehension-required and not understood: 420 (RFC 8489 7.3.1).
			if r.nUnknown < maxUnknown && !r.isUnknown(t) {
				r.unknown[r.nUnknown] = t
				r.nUnknown++
			}
		}
		off = next
	}
	return dropNone
}

func (r *request) isUnknown(t uint16) bool {
	for _, u := range r.unknown[:r.nUnknown] {
		if u == t {
			return true
		}
	}
	return false
}

// ignoredRequired lists comprehension-required attributes a Binding request
// may carry that we understand well enough to ignore: authentication (this
// server has no credentials, so it does not ask for any) and ICE checks.
func ignoredRequired(t uint16) bool {
	switch t {
	case attrUsername, attrRealm, attrNonce, attrPasswordAlgorithm, attrUserhash,
		attrPriority, attrUseCandidate, attrXORMappedAddress, attrMappedAddress:
		return true
	}
	return false
}

// answer is where a success response says the client is and where the
// server answered from.
type answer struct {
	mapped netip.AddrPort // the request's source address
	origin netip.AddrPort // the address the response is sent from
	other  netip.AddrPort // OTHER-ADDRESS; invalid when there is no second IP
}

// Sizes of attributes, header included, by address family.
func addrAttrSize(a netip.AddrPort) int {
	if a.Addr().Is4() {
		return 4 + 8
	}
	return 4 + 20
}

// buildSuccess writes a Binding success response into dst and returns its
// length. The response never exceeds budget bytes: attributes are added in
// order of usefulness and skipped when they do not fit, so a small request
// cannot draw a large answer (amplification). dst must hold maxResponse bytes.
func buildSuccess(dst []byte, r *request, a *answer, budget int, software string) int {
	if budget > len(dst) {
		budget = len(dst)
	}
	reserve := 0
	if r.fingerprint {
		reserve = 8
	}
	limit := budget - reserve
	n := writeHeader(dst, typeBindingSuccess, r)
	addAddr := func(t uint16, ap netip.AddrPort, xor bool) {
		if !ap.IsValid() || n+addrAttrSize(ap) > limit {
			return
		}
		n = putAddr(dst, n, t, ap, xor, r)
	}
	if r.legacy {
		addAddr(attrMappedAddress, a.mapped, false)
		addAddr(attrSourceAddress, a.origin, false)
		addAddr(attrChangedAddress, a.other, false)
	} else {
		addAddr(attrXORMappedAddress, a.mapped, true)
		addAddr(attrOtherAddress, a.other, false)
		addAddr(attrResponseOrigin, a.origin, false)
		addAddr(attrMappedAddress, a.mapped, false)
		if s := len(software); s > 0 && s <= 128 && n+4+(s+3)&^3 <= limit {
			n = putAttr(dst, n, attrSoftware, software)
		}
	}
	if r.padLen >= 0 {
		// RFC 5780 7.6: answer PADDING with PADDING. We mirror the request's
		// length, trimmed to what the budget allows, so padding never turns
		// into amplification.
		p := (r.padLen + 3) &^ 3
		if room := (limit - n - 4) &^ 3; p > room {
			p = room
		}
		if p >= 0 {
			n = putPadding(dst, n, p)
		}
	}
	return finish(dst, n, r)
}

// Reason phrases of the error codes we send (RFC 8489 section 14.8).
const (
	reasonBadRequest       = "Bad Request"
	reasonUnknownAttribute = "Unknown Attribute"
)

// buildError writes a Binding error response (400 or 420) into dst.
func buildError(dst []byte, r *request, code int, unknown []uint16) int {
	n := writeHeader(dst, typeBindingError, r)
	reason := reasonBadRequest
	if code == 420 {
		reason = reasonUnknownAttribute
	}
	l := 4 + len(reason)
	binary.BigEndian.PutUint16(dst[n:], attrErrorCode)
	binary.BigEndian.PutUint16(dst[n+2:], uint16(l))
	dst[n+4], dst[n+5] = 0, 0
	dst[n+6] = byte(code / 100)
	dst[n+7] = byte(code % 100)
	copy(dst[n+8:], reason)
	n = pad(dst, n+4+l)
	if len(unknown) > 0 {
		binary.BigEndian.PutUint16(dst[n:], attrUnknownAttributes)
		binary.BigEndian.PutUint16(dst[n+2:], uint16(2*len(unknown)))
		n += 4
		for _, u := range unknown {
			binary.BigEndian.PutUint16(dst[n:], u)
			n += 2
		}
		if len(unknown)%2 == 1 {
			// RFC 3489 padded the list by repeating an attribute; that
			// suits both old and new parsers.
			binary.BigEndian.PutUint16(dst[n:], unknown[0])
			n += 2
		}
	}
	return finish(dst, n, r)
}

func writeHeader(dst []byte, typ uint16, r *request) int {
	binary.BigEndian.PutUint16(dst[0:], typ)
	binary.BigEndian.PutUint16(dst[2:], 0)
	copy(dst[4:headerSize], r.id[:])
	return headerSize
}

// finish sets the header length and appends FINGERPRINT when the request
// carried one.
func finish(dst []byte, n int, r *request) int {
	if r.fingerprint {
		binary.BigEndian.PutUint16(dst[2:], uint16(n+8-headerSize))
		crc := crc32.ChecksumIEEE(dst[:n]) ^ fingerprintXOR
		binary.BigEndian.PutUint16(dst[n:], attrFingerprint)
		binary.BigEndian.PutUint16(dst[n+2:], 4)
		binary.BigEndian.PutUint32(dst[n+4:], crc)
		return n + 8
	}
	binary.BigEndian.PutUint16(dst[2:], uint16(n-headerSize))
	return n
}

// putAddr writes a MAPPED-ADDRESS-style attribute, XORed with the magic
// cookie and transaction ID when xor is set (RFC 8489 14.2).
func putAddr(dst []byte, n int, t uint16, ap netip.AddrPort, xor bool, r *request) int {
	ip := ap.Addr().Unmap()
	port := ap.Port()
	binary.BigEndian.PutUint16(dst[n:], t)
	dst[n+4] = 0
	var l int
	if ip.Is4() {
		l = 8
		dst[n+5] = 0x01
		a := ip.As4()
		copy(dst[n+8:], a[:])
	} else {
		l = 20
		dst[n+5] = 0x02
		a := ip.As16()
		copy(dst[n+8:], a[:])
	}
	if xor {
		port ^= magicCookie >> 16
		for i := 0; i < l-4; i++ {
			dst[n+8+i] ^= r.id[i] // r.id starts with the magic cookie
		}
	}
	binary.BigEndian.PutUint16(dst[n+2:], uint16(l))
	binary.BigEndian.PutUint16(dst[n+6:], port)
	return n + 4 + l
}

func putAttr(dst []byte, n int, t uint16, v string) int {
	binary.BigEndian.PutUint16(dst[n:], t)
	binary.BigEndian.PutUint16(dst[n+2:], uint16(len(v)))
	copy(dst[n+4:], v)
	return pad(dst, n+4+len(v))
}

func putPadding(dst []byte, n, l int) int {
	binary.BigEndian.PutUint16(dst[n:], attrPadding)
	binary.BigEndian.PutUint16(dst[n+2:], uint16(l))
	clear(dst[n+4 : n+4+l])
	return n + 4 + l
}

// pad zeroes dst up to the next multiple of four and returns that offset.
func pad(dst []byte, n int) int {
	for n%4 != 0 {
		dst[n] = 0
		n++
	}
	return n
}

package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// PCP wire format, RFC 6887 sections 7 and 11.
const (
	pcpVersion     = 2
	pcpOpAnnounce  = 0
	pcpOpMap       = 1
	pcpResponseBit = 0x80
	pcpHeaderLen   = 24
	pcpMapLen      = 36
	pcpMaxLen      = 1100 // section 7: messages never exceed 1100 octets
	protoUDP       = 17
)

// PCP result codes (section 7.4) that the report names.
var pcpResultNames = map[uint8]string{
	0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
	4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
	8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
	11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS",
}

// PCPResultError is a PCP response with a non-zero result code.
type PCPResultError struct{ Code uint8 }

func (e *PCPResultError) Error() string {
	if n, ok := pcpResultNames[e.Code]; ok {
		return fmt.Sprintf("PCP result %d (%s)", e.Code, n)
	}
	return fmt.Sprintf("PCP result %d", e.Code)
}

// errNATPMPAnswer: the server answered a PCP request in NAT-PMP's version 0
// (RFC 6887 section 9): it speaks NAT-PMP, not PCP.
var errNATPMPAnswer = errors.New("server answered with NAT-PMP (version 0): PCP not supported")

// pcpRequest is one request we send: ANNOUNCE or MAP.
type pcpRequest struct {
	Opcode       uint8
	Lifetime     uint32
	Client       netip.Addr // our own address, as the gateway sees it
	Nonce        [12]byte   // MAP only
	InternalPort uint16     // MAP only
	ExternalPort uint16     // MAP only: suggested
	ExternalIP   netip.Addr // MAP only: suggested; invalid = none
}

// marshal encodes the request; addresses are 16 bytes, IPv4 as IPv4-mapped.
func (r pcpRequest) marshal() []byte {
	n := pcpHeaderLen
	if r.Opcode == pcpOpMap {
		n += pcpMapLen
	}
	b := make([]byte, n)
	b[0] = pcpVersion
	b[1] = r.Opcode
	binary.BigEndian.PutUint32(b[4:8], r.Lifetime)
	putAddr16(b[8:24], r.Client)
	if r.Opcode == pcpOpMap {
		m := b[pcpHeaderLen:]
		copy(m[0:12], r.Nonce[:])
		m[12] = protoUDP
		binary.BigEndian.PutUint16(m[16:18], r.InternalPort)
		binary.BigEndian.PutUint16(m[18:20], r.ExternalPort)
		ext := r.ExternalIP
		if !ext.IsValid() {
			// Section 11.1: "no preference" is the all-zeros address of
			// the family, for IPv4 the IPv4-mapped ::ffff:0.0.0.0.
			ext = netip.IPv4Unspecified()
		}
		putAddr16(m[20:36], ext)
	}
	return b
}

func putAddr16(b []byte, a netip.Addr) {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	a16 := a.As16() // IPv4 comes out IPv4-mapped, as PCP wants it
	copy(b, a16[:])
}

// pcpResponse is what we read from a PCP response.
type pcpResponse struct {
	Opcode   uint8
	Result   uint8
	Lifetime uint32
	Epoch    uint32
	// MAP responses only.
	Nonce        [12]byte
	Protocol     uint8
	InternalPort uint16
	ExternalPort uint16
	ExternalIP   netip.Addr // unmapped to IPv4 when IPv4-mapped
}

// parsePCPResponse decodes a datagram from the PCP server. It checks the
// framing rules of section 7.1 (length a multiple of 4, at least the common
// header, at most 1100 octets, R bit set) and never panics on any input.
// Options after the opcode data are ignored: we send none, so a server has
// no business sending mandatory ones back we would need to understand.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 4 && b[0] == 0 {
		return r, errNATPMPAnswer
	}
	if len(b) < pcpHeaderLen {
		return r, fmt.Errorf("PCP response too short: %d bytes", len(b))
	}
	if len(b) > pcpMaxLen || len(b)%4 != 0 {
		return r, fmt.Errorf("PCP response of invalid length %d", len(b))
	}
	if b[0] != pcpVersion {
		return r, fmt.Errorf("PCP response with unknown version %d", b[0])
	}
	if b[1]&pcpResponseBit == 0 {
		return r, errors.New("PCP message is a request, not a response")
	}
	r.Opcode = b[1] &^ pcpResponseBit
	r.Result = b[3]
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	if r.Opcode != pcpOpMap {
		return r, nil
	}
	if len(b) < pcpHeaderLen+pcpMapLen {
		return r, fmt.Errorf("PCP MAP response too short: %d bytes", len(b))
	}
	m := b[pcpHeaderLen:]
	copy(r.Nonce[:], m[0:12])
	r.Protocol = m[12]
	r.InternalPort = binary.BigEndian.Uint16(m[16:18])
	r.ExternalPort = binary.BigEndian.Uint16(m[18:20])
	r.ExternalIP = netip.AddrFrom16([16]byte(m[20:36])).Unmap()
	return r, nil
}

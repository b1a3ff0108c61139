package rendezvous

import (
	"encoding/binary"
	"io"
)

// The rendezvous shares the STUN server's UDP port. Its datagrams start
// with a 4-byte magic whose first byte, 0xD7, has the two top bits set:
// every STUN message starts with two zero bits (RFC 8489 section 5), so no
// rendezvous datagram can parse as STUN, nor a STUN message as a
// rendezvous one, and 192-255 is a first-byte range RFC 7983's
// demultiplexing leaves unassigned (STUN 0-3, ZRTP 16-19, DTLS 20-63,
// TURN channels 64-79, RTP/RTCP 128-191). A STUN message of a private
// method would have squatted an IANA-registered number space and been
// bound by STUN's framing; this format is ours to size (a sealed blob of
// up to 2 KiB plus padding).
//
// Request (client to server), all integers big-endian:
//
//	0  magic    4  D7 'n' 'r' 'v'
//	4  version  1  1
//	5  op       1  1 put, 2 get, 3 leave
//	6  role     1  0 creator, 1 joiner
//	7  flags    1  bit 0 (get, put): the sender has the other's blob: answer "present", not the blob
//	8  txid     8  echoed in the reply
//	16 cookie  16  zero, or the server's last cookie
//	32 lookup  16  the code's lookup key
//	48 length   2  put: the sealed blob's length; otherwise 0
//	50 blob        length bytes
//	   padding     zero or more bytes, ignored
//
// Reply (server to client):
//
//	0  magic    4
//	4  version  1
//	5  status   1  see the st* constants
//	6  arg      2  statusPad: the request length needed
//	8  txid     8
//	16 body        statusCookie: 16-byte cookie; statusPeer: length (2) and sealed blob
var magic = [4]byte{0xD7, 'n', 'r', 'v'}

const (
	version = 1

	reqHeader   = 50
	replyHeader = 16
	cookieSize  = 16

	// MaxMessage is the largest rendezvous datagram (request or reply),
	// padding included; larger ones are never answered.
	MaxMessage = 2304
	// minPadded is the size the client pads every put and get to, so
	// that the largest reply (a 2 KiB blob: replyHeader+2+maxSealed =
	// 2094 bytes) stays within 4 times the request.
	minPadded = 576
)

// Operations.
const (
	opPut   = 1
	opGet   = 2
	opLeave = 3
)

const flagHavePeer = 1

// Reply statuses.
const (
	statusCookie   = 1  // no valid cookie: here is one, ask again with it
	statusWaiting  = 2  // stored; the other side has not come yet
	statusPeer     = 3  // the other side's sealed blob follows
	statusPresent  = 4  // the other side is there (its blob omitted on request)
	statusLeft     = 5  // the other side has left
	statusUnknown  = 6  // no such code (mistyped, expired, or never created)
	statusTaken    = 7  // this role of the code holds another blob: a third peer is refused
	statusFull     = 8  // the server holds as many codes as it may (in all, or from this source)
	statusPad      = 9  // the answer would exceed the amplification bound: pad the request to arg bytes
	statusDisabled = 10 // the server does not offer rendezvous
	statusAck      = 11 // leave done
)

// IsMessage reports whether a datagram is meant for the rendezvous (its
// magic), so a server can route it before STUN parsing.
func IsMessage(b []byte) bool {
	return len(b) >= 4 && b[0] == magic[0] && b[1] == magic[1] && b[2] == magic[2] && b[3] == magic[3]
}

// request is a parsed request; blob aliases the datagram.
type request struct {
	op     uint8
	role   Role
	flags  uint8
	txid   [8]byte
	cookie [cookieSize]byte
	lookup LookupKey
	blob   []byte
}

// parseRequest validates a request datagram. Anything malformed is
// rejected (and never answered).
func parseRequest(b []byte, r *request) bool {
	if len(b) < reqHeader || len(b) > MaxMessage || !IsMessage(b) || b[4] != version {
		return false
	}
	r.op, r.role, r.flags = b[5], Role(b[6]), b[7]
	if r.op < opPut || r.op > opLeave || r.role > Joiner || r.flags&^flagHavePeer != 0 {
		return false
	}
	copy(r.txid[:], b[8:16])
	copy(r.cookie[:], b[16:32])
	copy(r.lookup[:], b[32:48])
	n := int(binary.BigEndian.Uint16(b[48:50]))
	switch {
	case r.op == opPut && (n < Overhead || n > maxSealed):
		return false
	case r.op != opPut && n != 0:
		return false
	case reqHeader+n > len(b):
		return false
	}
	r.blob = b[reqHeader : reqHeader+n]
	return true
}

// appendRequest builds a request, padded to at least pad bytes.
func appendRequest(dst []byte, r *request, pad int) []byte {
	dst = append(dst, magic[:]...)
	dst = append(dst, version, r.op, byte(r.role), r.flags)
	dst = append(dst, r.txid[:]...)
	dst = append(dst, r.cookie[:]...)
	dst = append(dst, r.lookup[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.blob)))
	dst = append(dst, r.blob...)
	for len(dst) < pad {
		dst = append(dst, 0)
	}
	return dst
}

// putReply writes a reply header into out and returns its length.
func putReply(out []byte, status uint8, arg uint16, txid *[8]byte) int {
	copy(out, magic[:])
	out[4] = version
	out[5] = status
	binary.BigEndian.PutUint16(out[6:8], arg)
	copy(out[8:16], txid[:])
	return replyHeader
}

// reply is a parsed reply; body aliases the datagram.
type reply struct {
	status uint8
	arg    uint16
	txid   [8]byte
	cookie [cookieSize]byte
	blob   []byte
}

func parseReply(b []byte, r *reply) bool {
	if len(b) < replyHeader || len(b) > MaxMessage || !IsMessage(b) || b[4] != version {
		return false
	}
	r.status = b[5]
	r.arg = binary.BigEndian.Uint16(b[6:8])
	copy(r.txid[:], b[8:16])
	body := b[replyHeader:]
	switch r.status {
	case statusCookie:
		if len(body) != cookieSize {
			return false
		}
		copy(r.cookie[:], body)
	case statusPeer:
		if len(body) < 2 {
			return false
		}
		n := int(binary.BigEndian.Uint16(body))
		if n < Overhead || n > maxSealed || 2+n != len(body) {
			return false
		}
		r.blob = body[2:]
	default:
		if r.status < statusCookie || r.status > statusAck || len(body) != 0 {
			return false
		}
	}
	return true
}

// Over TCP (for a side whose UDP is blocked) a request and its reply are
// sent as they are, unpadded: both delimit themselves (a request by its
// blob length, a reply by its status), so a stream needs no framing of its
// own. The first byte, 0xD7, tells a STUN server's TCP reader that a
// rendezvous request follows, not a STUN message.

// ReadRequest reads one request from a stream whose first prefix bytes
// were already read into buf (len(buf) >= MaxMessage) and returns its
// length; false when the stream does not hold a well-formed request.
func ReadRequest(r io.Reader, buf []byte, prefix int) (int, bool) {
	if prefix > reqHeader || len(buf) < MaxMessage {
		return 0, false
	}
	if _, err := io.ReadFull(r, buf[prefix:reqHeader]); err != nil || !IsMessage(buf) {
		return 0, false
	}
	n := reqHeader + int(binary.BigEndian.Uint16(buf[48:50]))
	if n > MaxMessage {
		return 0, false
	}
	if _, err := io.ReadFull(r, buf[reqHeader:n]); err != nil {
		return 0, false
	}
	var req request
	return n, parseRequest(buf[:n], &req)
}

// readReply reads one reply from a stream into buf and returns its length.
func readReply(r io.Reader, buf []byte) (int, error) {
	if _, err := io.ReadFull(r, buf[:replyHeader]); err != nil {
		return 0, err
	}
	if !IsMessage(buf) {
		return 0, errProtocol
	}
	body := 0
	switch buf[5] {
	case statusCookie:
		body = cookieSize
	case statusPeer:
		if _, err := io.ReadFull(r, buf[replyHeader:replyHeader+2]); err != nil {
			return 0, err
		}
		body = 2 + int(binary.BigEndian.Uint16(buf[replyHeader:replyHeader+2]))
	}
	n := replyHeader + body
	if n > MaxMessage {
		return 0, errProtocol
	}
	start := replyHeader
	if buf[5] == statusPeer {
		start += 2
	}
	if _, err := io.ReadFull(r, buf[start:n]); err != nil {
		return 0, err
	}
	return n, nil
}

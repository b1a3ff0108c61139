package stunclient

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
)

// StreamBinding runs one Binding transaction on a connected stream (RFC
// 8489 section 6.2.2): it writes a request and reads one reply, accepted
// only as UDP replies are (a Binding response whose FINGERPRINT, when
// present, is right) and only with the request's transaction ID. The RTT
// runs from the write to the reply and is set, also on a foreign reply,
// as soon as a reply was read.
func StreamBinding(c net.Conn, to netip.AddrPort) (Response, error) {
	req, err := BuildRequest(0)
	if err != nil {
		return Response{}, err
	}
	start := time.Now()
	if _, err := c.Write(req.Raw); err != nil {
		return Response{}, err
	}
	m, err := readBindingResponse(c)
	if err != nil {
		return Response{}, err
	}
	rtt := time.Since(start)
	if m.TransactionID != req.TransactionID {
		return Response{RTT: rtt}, errors.New("reply with a foreign transaction ID")
	}
	resp := ParseResponse(m, to)
	resp.RTT, resp.RTTExact, resp.Attempts = rtt, true, 1
	return resp, nil
}

// readBindingResponse reads one STUN message from a stream (with the framing
// of ReadStreamMessage) and accepts it only as a Binding response whose
// FINGERPRINT, when present, is right: the checks UDP replies get too.
func readBindingResponse(rd io.Reader) (*stun.Message, error) {
	m, err := ReadStreamMessage(rd)
	if err != nil {
		return nil, err
	}
	if m, ok := decodeResponse(m.Raw); ok {
		return m, nil
	}
	return nil, errors.New("not a STUN Binding response")
}

// ReadStreamMessage reads one STUN message from a stream: a 20-byte
// header whose length field gives the size of the attributes that follow.
func ReadStreamMessage(rd io.Reader) (*stun.Message, error) {
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(rd, hdr); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:4]))
	if n > 1280 || n%4 != 0 {
		return nil, errors.New("malformed STUN message over TCP")
	}
	raw := make([]byte, 20+n)
	copy(raw, hdr)
	if _, err := io.ReadFull(rd, raw[20:]); err != nil {
		return nil, err
	}
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		return nil, err
	}
	return m, nil
}

package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// tcpRound asks every server for a binding over TCP (RFC 8489 6.2.2), to
// tell "UDP blocked" (TCP answers) from "offline" (nothing answers).
func (r *typeRun) tcpRound(ctx context.Context) []TestResult {
	out := make([]TestResult, len(r.cfg.Servers))
	var wg sync.WaitGroup
	for i, s := range r.cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.tcpBinding(ctx, s)
		}()
	}
	wg.Wait()
	return out
}

func (r *typeRun) tcpBinding(ctx context.Context, to netip.AddrPort) TestResult {
	t := TestResult{Name: TestTCP, To: to, Attempts: 1}
	network := "tcp4"
	if r.cfg.Family == IPv6 {
		network = "tcp6"
	}
	start := time.Now()
	// Cancel (rather than a context, which transport.Dialer lacks) lets
	// Ctrl-C end a dial to a black-holed server at once.
	d := r.cfg.Net.CreateDialer(&net.Dialer{Deadline: r.deadline, Cancel: ctx.Done()}) //nolint:staticcheck

	c, err := d.Dial(network, to.String())
	if err != nil {
		t.Err = err.Error()
		return t
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetDeadline(r.deadline)
	t.Local = addrPortOf(c.LocalAddr())
	resp, err := streamBinding(c, to)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	// From before the dial: this RTT includes the TCP handshake.
	t.Replied, t.From, t.RTT = true, to, time.Since(start)
	t.XORMapped, t.Mapped, t.ErrorCode = resp.XORMapped, resp.Mapped, resp.ErrorCode
	return t
}

// streamBinding runs one Binding transaction on a connected stream (RFC
// 8489 section 6.2.2): it writes a request and reads one reply, accepted
// only as UDP replies are (a Binding response whose FINGERPRINT, when
// present, is right) and only with the request's transaction ID. The RTT
// runs from the write to the reply and is set, also on a foreign reply,
// as soon as a reply was read.
func streamBinding(c net.Conn, to netip.AddrPort) (Response, error) {
	req, err := buildRequest(0)
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
	resp := parseResponse(m, to)
	resp.RTT, resp.RTTExact, resp.Attempts = rtt, true, 1
	return resp, nil
}

// readBindingResponse reads one STUN message from a stream (with the framing
// of readStreamMessage) and accepts it only as a Binding response whose
// FINGERPRINT, when present, is right: the checks UDP replies get too.
func readBindingResponse(rd io.Reader) (*stun.Message, error) {
	m, err := readStreamMessage(rd)
	if err != nil {
		return nil, err
	}
	if m, ok := decodeResponse(m.Raw); ok {
		return m, nil
	}
	return nil, errors.New("not a STUN Binding response")
}

// readStreamMessage reads one STUN message from a stream: a 20-byte
// header whose length field gives the size of the attributes that follow.
func readStreamMessage(rd io.Reader) (*stun.Message, error) {
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

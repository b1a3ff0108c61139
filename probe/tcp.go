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
	t.Local, _ = netip.ParseAddrPort(c.LocalAddr().String())
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	if _, err := c.Write(req.Raw); err != nil {
		t.Err = err.Error()
		return t
	}
	m, err := readStreamMessage(c)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	if m.TransactionID != req.TransactionID {
		t.Err = "reply with a foreign transaction ID"
		return t
	}
	t.Replied, t.From, t.RTT = true, to, time.Since(start)
	var x stun.XORMappedAddress
	if x.GetFrom(m) == nil {
		t.XORMapped = udpAddrPort(x.IP, x.Port)
	}
	var ma stun.MappedAddress
	if ma.GetFrom(m) == nil {
		t.Mapped = udpAddrPort(ma.IP, ma.Port)
	}
	var ec stun.ErrorCodeAttribute
	if ec.GetFrom(m) == nil {
		t.ErrorCode = int(ec.Code)
	}
	return t
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

package probe

// TEMPORARY stand-in for the lead's engine (TEAM.md contract); deleted when
// main's probe engine is merged.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/transport/v3"
)

type Family int

const (
	IPv4 Family = iota + 1
	IPv6
)

type ChangeFlags uint32

const (
	ChangeIP   ChangeFlags = 0x04
	ChangePort ChangeFlags = 0x02
)

var ErrNoResponse = errors.New("no response")

type Request struct {
	To         netip.AddrPort
	Change     ChangeFlags
	AcceptFrom func(netip.AddrPort) bool
	RTO        time.Duration
	Attempts   int
	LastWait   time.Duration
}

type Response struct {
	From                                                            netip.AddrPort
	RTT                                                             time.Duration
	Attempts                                                        int
	XORMapped, Mapped, ResponseOrigin, OtherAddress, ChangedAddress netip.AddrPort
	Software                                                        string
	ErrorCode                                                       int
}

type Conn struct {
	pc      net.PacketConn
	mu      sync.Mutex
	pending map[[12]byte]chan pkt
	done    chan struct{}
}

type pkt struct {
	m    *stun.Message
	from netip.AddrPort
	at   time.Time
}

func Listen(ctx context.Context, n transport.Net, f Family, laddr string) (*Conn, error) {
	network := "udp4"
	if f == IPv6 {
		network = "udp6"
	}
	pc, err := n.ListenPacket(network, laddr)
	if err != nil {
		return nil, err
	}
	c := &Conn{pc: pc, pending: map[[12]byte]chan pkt{}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *Conn) LocalAddr() netip.AddrPort {
	a, _ := netip.ParseAddrPort(c.pc.LocalAddr().String())
	return a
}

func (c *Conn) Close() error { return c.pc.Close() }

func (c *Conn) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil {
			continue
		}
		f, _ := netip.ParseAddrPort(from.String())
		c.mu.Lock()
		ch := c.pending[m.TransactionID]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- pkt{m, f, time.Now()}:
			default:
			}
		}
	}
}

func (c *Conn) Do(ctx context.Context, r Request) (Response, error) {
	attrs := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if r.Change != 0 {
		v := uint32(r.Change)
		attrs = append(attrs, stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}})
	}
	attrs = append(attrs, stun.Fingerprint)
	m, err := stun.Build(attrs...)
	if err != nil {
		return Response{}, err
	}
	ch := make(chan pkt, 8)
	c.mu.Lock()
	c.pending[m.TransactionID] = ch
	c.mu.Unlock()
	defer func() { c.mu.Lock(); delete(c.pending, m.TransactionID); c.mu.Unlock() }()
	to := net.UDPAddrFromAddrPort(r.To)
	rto := r.RTO
	var sent []time.Time
	for i := 0; i < max(r.Attempts, 1); i++ {
		if _, err := c.pc.WriteTo(m.Raw, to); err != nil {
			return Response{}, err
		}
		sent = append(sent, time.Now())
		wait := rto
		if i == max(r.Attempts, 1)-1 {
			wait = r.LastWait
		}
		t := time.NewTimer(wait)
	loop:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return Response{}, ctx.Err()
			case <-t.C:
				break loop
			case p := <-ch:
				ok := p.from == r.To
				if r.AcceptFrom != nil {
					ok = r.AcceptFrom(p.from)
				}
				if !ok {
					continue
				}
				t.Stop()
				resp := Response{From: p.from, Attempts: len(sent)}
				if len(sent) == 1 {
					resp.RTT = p.at.Sub(sent[0])
				}
				var x stun.XORMappedAddress
				if x.GetFrom(p.m) == nil {
					resp.XORMapped = udpAP(x.IP, x.Port)
				}
				var ma stun.MappedAddress
				if ma.GetFrom(p.m) == nil {
					resp.Mapped = udpAP(ma.IP, ma.Port)
				}
				var oa stun.OtherAddress
				if oa.GetFrom(p.m) == nil {
					resp.OtherAddress = udpAP(oa.IP, oa.Port)
				}
				var ec stun.ErrorCodeAttribute
				if ec.GetFrom(p.m) == nil {
					resp.ErrorCode = int(ec.Code)
				}
				return resp, nil
			}
		}
		rto *= 2
	}
	return Response{Attempts: len(sent)}, ErrNoResponse
}

func udpAP(ip net.IP, port int) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

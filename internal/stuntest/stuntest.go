// Package stuntest runs scriptable in-process STUN servers on loopback for
// unit tests: dead, slow, lossy, lying or garbage-spouting ones.
package stuntest

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
)

// Behaviour decides how the server treats the n-th request (n from 1).
type Behaviour struct {
	Drop     func(n int) bool                         // drop this request silently
	Delay    time.Duration                            // answer this much later
	Garbage  bool                                     // answer with random non-STUN bytes first
	WrongTx  bool                                     // answer first with a wrong transaction ID
	Mapped   func(from netip.AddrPort) netip.AddrPort // lie about the mapping
	NoMapped bool                                     // send a success response without any address
	// SpoofFrom, when set, answers from a socket on this IP instead of the
	// one asked: the reply a client must ignore.
	SpoofFrom string

	// RFC 5780 misbehaviours, for servers started with Start5780 or
	// Serve5780 (see also the ready-made Modes).
	//
	// Other, when set, is the OTHER-ADDRESS advertised instead of the
	// genuine one, given the socket asked and the genuine one.
	Other func(asked, genuine netip.AddrPort) netip.AddrPort
	// Honour, when set, is the part of a CHANGE-REQUEST the server really
	// makes: 0 ignores it (the reply comes from the socket asked), and
	// nat.ChangePort or nat.ChangeIP honour only half of it.
	Honour func(asked nat.ChangeFlags) nat.ChangeFlags
	// ChangeDelay answers CHANGE-REQUESTs this much later than plain
	// Binding requests.
	ChangeDelay time.Duration
}

// Server is a running test server.
type Server struct {
	Addr netip.AddrPort
	// Other is the genuine alternate address of an RFC 5780 server (the
	// second IP and port); zero for a single-socket server.
	Other    netip.AddrPort
	conn     *net.UDPConn
	conns    [2][2]*net.UDPConn // RFC 5780: [IP index][port index]; nil for a single socket
	b        Behaviour
	requests atomic.Int64
	wg       sync.WaitGroup
}

// Start listens on ip (e.g. "127.0.0.1") at a free port until the test ends.
func Start(t testing.TB, ip string, b Behaviour) *Server {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		testutil.SkipIfNotLocal(t, err)
		t.Fatalf("stuntest: listen: %v", err)
	}
	return Serve(t, c, b)
}

// Serve answers on an open socket (e.g. one opened in a lab namespace)
// until the test ends.
func Serve(t testing.TB, c *net.UDPConn, b Behaviour) *Server {
	s := &Server{Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c, b: b}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { c.Close(); s.wg.Wait() })
	return s
}

// Dead returns an address on ip where nothing answers: a socket that is
// open (so no ICMP error comes back) but never replies.
func Dead(t testing.TB, ip string) netip.AddrPort {
	return Start(t, ip, Behaviour{Drop: func(int) bool { return true }}).Addr
}

// Requests counts the requests received.
func (s *Server) Requests() int { return int(s.requests.Load()) }

func (s *Server) serve() { s.serveOn(s.conn, 0, 0) }

// serveOn answers requests arriving on c, socket [ip][port] of an RFC 5780
// server (0, 0 for a single socket).
func (s *Server) serveOn(c *net.UDPConn, ip, port int) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		k := int(s.requests.Add(1))
		if s.b.Drop != nil && s.b.Drop(k) {
			continue
		}
		out, delay, other := c, s.b.Delay, netip.AddrPort{}
		if s.conns[0][0] != nil {
			other = s.conns[1-ip][1-port].LocalAddr().(*net.UDPAddr).AddrPort()
			if s.b.Other != nil {
				other = s.b.Other(c.LocalAddr().(*net.UDPAddr).AddrPort(), other)
			}
		}
		if change := changeOf(req); change != 0 && s.conns[0][0] != nil {
			if s.b.Honour != nil {
				change = s.b.Honour(change)
			}
			i, p := ip, port
			if change&nat.ChangeIP != 0 {
				i = 1 - i
			}
			if change&nat.ChangePort != 0 {
				p = 1 - p
			}
			out, delay = s.conns[i][p], delay+s.b.ChangeDelay
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			time.Sleep(delay)
			s.answer(out, req, from, other)
		}()
	}
}

// changeOf reads a request's CHANGE-REQUEST flags (0 without one).
func changeOf(req *stun.Message) nat.ChangeFlags {
	v, err := req.Get(stun.AttrChangeRequest)
	if err != nil || len(v) != 4 {
		return 0
	}
	return nat.ChangeFlags(v[3]) & (nat.ChangeIP | nat.ChangePort)
}

func (s *Server) answer(out *net.UDPConn, req *stun.Message, from, other netip.AddrPort) {
	to := net.UDPAddrFromAddrPort(from)
	if s.b.SpoofFrom != "" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(s.b.SpoofFrom)})
		if err != nil {
			return
		}
		defer c.Close()
		out = c
	}
	if s.b.Garbage {
		out.WriteToUDP([]byte("definitely not a STUN message, just noise"), to)
	}
	if s.b.WrongTx {
		wrong := *req
		wrong.TransactionID[0] ^= 0xff
		if m, err := s.reply(&wrong, from, other); err == nil {
			out.WriteToUDP(m.Raw, to)
		}
	}
	if m, err := s.reply(req, from, other); err == nil {
		out.WriteToUDP(m.Raw, to)
	}
}

func (s *Server) reply(req *stun.Message, from, other netip.AddrPort) (*stun.Message, error) {
	b := s.b
	mapped := from
	if b.Mapped != nil {
		mapped = b.Mapped(from)
	}
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess}
	if !b.NoMapped {
		setters = append(setters, &stun.XORMappedAddress{IP: mapped.Addr().AsSlice(), Port: int(mapped.Port())})
	}
	if other.IsValid() {
		setters = append(setters, &stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
	}
	setters = append(setters, stun.NewSoftware("stuntest"), stun.Fingerprint)
	return stun.Build(setters...)
}

// ServerAt is the STUN server address a test passes to the probers for a.
func ServerAt(t testing.TB, a netip.AddrPort) stunclient.Server {
	t.Helper()
	s, err := stunclient.ParseServer(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

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
}

// Server is a running test server.
type Server struct {
	Addr     netip.AddrPort
	conn     *net.UDPConn
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

func (s *Server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
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
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			time.Sleep(s.b.Delay)
			s.answer(req, from)
		}()
	}
}

func (s *Server) answer(req *stun.Message, from netip.AddrPort) {
	to := net.UDPAddrFromAddrPort(from)
	out := s.conn
	if s.b.SpoofFrom != "" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(s.b.SpoofFrom)})
		if err != nil {
			return
		}
		defer c.Close()
		out = c
	}
	if s.b.Garbage {
		s.conn.WriteToUDP([]byte("definitely not a STUN message, just noise"), to)
	}
	if s.b.WrongTx {
		other := *req
		other.TransactionID[0] ^= 0xff
		if m, err := reply(&other, from, s.b); err == nil {
			out.WriteToUDP(m.Raw, to)
		}
	}
	if m, err := reply(req, from, s.b); err == nil {
		out.WriteToUDP(m.Raw, to)
	}
}

func reply(req *stun.Message, from netip.AddrPort, b Behaviour) (*stun.Message, error) {
	mapped := from
	if b.Mapped != nil {
		mapped = b.Mapped(from)
	}
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess}
	if !b.NoMapped {
		setters = append(setters, &stun.XORMappedAddress{IP: mapped.Addr().AsSlice(), Port: int(mapped.Port())})
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

package stuntest

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/probe/nat"
)

// Start5780 runs an RFC 5780 server on two IPs and two free ports (the
// same two port numbers on both IPs): it advertises OTHER-ADDRESS and
// answers CHANGE-REQUESTs from the changed socket, unless b says otherwise.
func Start5780(t testing.TB, ip1, ip2 string, b Behaviour) *Server {
	t.Helper()
	for range 20 {
		c1, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip1), 0)))
		if err != nil {
			testutil.SkipIfNotLocal(t, err)
			t.Fatalf("stuntest: listen: %v", err)
		}
		p1 := c1.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		conns := [4]*net.UDPConn{c1}
		ok := true
		for i, a := range []netip.AddrPort{
			netip.AddrPortFrom(netip.MustParseAddr(ip1), p1+1),
			netip.AddrPortFrom(netip.MustParseAddr(ip2), p1),
			netip.AddrPortFrom(netip.MustParseAddr(ip2), p1+1),
		} {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
			if err != nil {
				ok = false
				break
			}
			conns[i+1] = c
		}
		if ok {
			return Serve5780(t, conns, b)
		}
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	t.Fatal("stuntest: no two free adjacent ports on both IPs")
	return nil
}

// Serve5780 answers as an RFC 5780 server on four open sockets: primary
// IP and port, primary IP and alternate port, alternate IP and primary
// port, alternate IP and port (e.g. sockets opened in a lab namespace).
func Serve5780(t testing.TB, conns [4]*net.UDPConn, b Behaviour) *Server {
	s := &Server{b: b, conn: conns[0]}
	s.conns = [2][2]*net.UDPConn{{conns[0], conns[1]}, {conns[2], conns[3]}}
	s.Addr = conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
	s.Other = conns[3].LocalAddr().(*net.UDPAddr).AddrPort()
	for i, c := range conns {
		s.wg.Add(1)
		go s.serveOn(c, i/2, i%2)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		s.wg.Wait()
	})
	return s
}

// Mode is a named misbehaviour of a server, for table tests.
type Mode struct {
	Name string
	Doc  string
	// New makes the Behaviour afresh (its state, such as a counter or a
	// rate limiter's bucket, belongs to one server). dead is an address
	// where nothing answers, for modes that need one.
	New func(dead netip.AddrPort) Behaviour
}

// Modes are the misbehaviours of real public servers that natcheck must
// survive: each must yield the right verdict or "unknown", never a wrong
// one. "honest" is the well-behaved server, for comparison.
var Modes = []Mode{
	{"honest", "a genuine RFC 5780 server", func(netip.AddrPort) Behaviour { return Behaviour{} }},
	{"inconsistent-mapping", "every other answer names a random wrong port (and sometimes a wrong IP) for the same socket",
		func(netip.AddrPort) Behaviour { return Behaviour{Mapped: Inconsistent()} }},
	{"other-own-ip", "OTHER-ADDRESS names the server's own IP with the alternate port",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Other: func(asked, g netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(asked.Addr(), g.Port()) },
				Honour: func(c nat.ChangeFlags) nat.ChangeFlags { return c &^ nat.ChangeIP }}
		}},
	{"other-dead", "OTHER-ADDRESS names an address where nothing answers",
		func(dead netip.AddrPort) Behaviour {
			return Behaviour{Other: func(_, _ netip.AddrPort) netip.AddrPort { return dead }}
		}},
	{"change-ignored", "CHANGE-REQUEST ignored: every answer comes from the socket asked",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Honour: func(nat.ChangeFlags) nat.ChangeFlags { return 0 }}
		}},
	{"change-port-only", "only the port change of a CHANGE-REQUEST is honoured",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Honour: func(c nat.ChangeFlags) nat.ChangeFlags { return c & nat.ChangePort }}
		}},
	{"change-ip-only", "only the IP change of a CHANGE-REQUEST is honoured",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Honour: func(c nat.ChangeFlags) nat.ChangeFlags { return c & nat.ChangeIP }}
		}},
	{"change-slow", "CHANGE-REQUESTs are honoured 300 ms later than plain Binding requests",
		func(netip.AddrPort) Behaviour { return Behaviour{ChangeDelay: 300 * time.Millisecond} }},
	{"rate-limited", "a per-server token bucket (burst 8, 20 requests/s) drops the rest",
		func(netip.AddrPort) Behaviour { return Behaviour{Drop: RateLimit(8, 20)} }},
	{"random-drop", "drops 40% of requests at random",
		func(netip.AddrPort) Behaviour { return Behaviour{Drop: func(int) bool { return rand.IntN(100) < 40 }} }},
	{"wrong-family", "XOR-MAPPED-ADDRESS of the IPv6 family answers an IPv4 client",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Mapped: func(from netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.MustParseAddr("2001:db8::2"), from.Port())
			}}
		}},
	{"mapped-zero", "the mapped address is 0.0.0.0 with the right port",
		func(netip.AddrPort) Behaviour {
			return Behaviour{Mapped: func(from netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.IPv4Unspecified(), from.Port())
			}}
		}},
}

// Inconsistent is a Mapped lie: every second answer (counted over the
// whole server) names a random port, and one in four of those a
// neighbouring IP as well, as the intermittently wrong public servers do.
func Inconsistent() func(netip.AddrPort) netip.AddrPort {
	var mu sync.Mutex
	n := 0
	return func(from netip.AddrPort) netip.AddrPort {
		mu.Lock()
		n++
		lie := n%2 == 0
		mu.Unlock()
		if !lie {
			return from
		}
		a := from.Addr()
		if rand.IntN(4) == 0 {
			a = a.Next()
		}
		p := from.Port()
		for p == from.Port() {
			p = uint16(1024 + rand.IntN(64511))
		}
		return netip.AddrPortFrom(a, p)
	}
}

// RateLimit is a Drop for a token bucket of burst requests refilled at
// perSecond: requests beyond it are dropped, as a server's per-client
// limiter does.
func RateLimit(burst int, perSecond float64) func(int) bool {
	var mu sync.Mutex
	tokens, last := float64(burst), time.Now()
	return func(int) bool {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		tokens = min(float64(burst), tokens+now.Sub(last).Seconds()*perSecond)
		last = now
		if tokens < 1 {
			return true
		}
		tokens--
		return false
	}
}

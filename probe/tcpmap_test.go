package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v4/stdnet"
)

// tcpServer is a loopback STUN-over-TCP server. mapped decides the address
// it reports, from the client's endpoint and the listener's own, so a test
// can play a NAT of any mapping behaviour.
type tcpServer struct {
	addr netip.AddrPort
}

func startTCPServer(t *testing.T, addr string, other netip.AddrPort, mapped func(client, local netip.AddrPort) netip.AddrPort) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	s := &tcpServer{addr: stunclient.AddrPortOf(ln.Addr())}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveTCPConn(c, s.addr, other, mapped)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

func serveTCPConn(c net.Conn, local, other netip.AddrPort, mapped func(client, local netip.AddrPort) netip.AddrPort) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 20)
	if _, err := c.Read(hdr); err != nil {
		return
	}
	req := &stun.Message{Raw: append([]byte(nil), hdr...)}
	if req.Decode() != nil {
		// a request with attributes: read the rest
		n := int(hdr[2])<<8 | int(hdr[3])
		rest := make([]byte, n)
		if _, err := c.Read(rest); err != nil {
			return
		}
		req = &stun.Message{Raw: append(hdr, rest...)}
		if req.Decode() != nil {
			return
		}
	}
	client := stunclient.AddrPortOf(c.RemoteAddr())
	m := client
	if mapped != nil {
		m = mapped(client, local)
	}
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: m.Addr().AsSlice(), Port: int(m.Port())}}
	if other.IsValid() {
		setters = append(setters, &stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
	}
	if msg, err := stun.Build(append(setters, stun.Fingerprint)...); err == nil {
		c.Write(msg.Raw)
	}
	// Hold the connection (and so the "mapping") until the client closes.
	c.Read(hdr)
}

// rfc5780TCP starts a primary on 127.0.0.1:p, an alternate IP at the same
// port on 127.0.0.2:p, and the OTHER-ADDRESS on 127.0.0.2:q.
func rfc5780TCP(t *testing.T, mapped func(client, local netip.AddrPort) netip.AddrPort) stunclient.Server {
	t.Helper()
	alt := startTCPServer(t, "127.0.0.2:0", netip.AddrPort{}, mapped)
	for range 10 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := stunclient.AddrPortOf(ln.Addr()).Port()
		ln.Close()
		l2, err := net.Listen("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), p).String())
		if err != nil {
			continue
		}
		l2.Close()
		startTCPServer(t, l2.Addr().String(), alt.addr, mapped)
		prim := startTCPServer(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p).String(), alt.addr, mapped)
		return stuntest.ServerAt(t, prim.addr)
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return stunclient.Server{}
}

func runTCPMapping(t *testing.T, servers ...stunclient.Server) *TCPMapping {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := RunTCPMapping(ctx, TCPMappingOptions{Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTCPMappingBehaviours(t *testing.T) {
	lo := netip.MustParseAddr("203.0.113.2")
	for _, tc := range []struct {
		name   string
		mapped func(client, local netip.AddrPort) netip.AddrPort
		want   nat.Mapping
		eim    bool
	}{
		{"loopback is endpoint-independent", nil, nat.EndpointIndependent, true},
		{"address-dependent", func(c, l netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(lo, c.Port()+uint16(l.Addr().As4()[3]))
		}, nat.AddressDependent, false},
		{"address-and-port-dependent", func(c, l netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(lo, c.Port()^l.Port()+uint16(l.Addr().As4()[3]))
		}, nat.AddressAndPortDependent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := runTCPMapping(t, rfc5780TCP(t, tc.mapped))
			if m.Mapping != tc.want || m.EndpointIndependent != tri.Of(tc.eim) {
				t.Fatalf("mapping %q eim %v (%s); want %q %v", m.Mapping, m.EndpointIndependent, m.Reason, tc.want, tc.eim)
			}
			if len(m.Tests) != 3 {
				t.Fatalf("tests %+v", m.Tests)
			}
			for _, x := range m.Tests {
				if x.Local != m.Local || x.Err != nil {
					t.Errorf("test %s from %s (err %v); every test must leave from %s", x.Name, x.Local, x.Err, m.Local)
				}
			}
		})
	}
}

// Without OTHER-ADDRESS a second server on another IP still tells whether
// the mapping is endpoint-independent, but not which dependence it has.
func TestTCPMappingWithTwoPlainServers(t *testing.T) {
	a := startTCPServer(t, "127.0.0.1:0", netip.AddrPort{}, nil)
	b := startTCPServer(t, "127.0.0.2:0", netip.AddrPort{}, nil)
	m := runTCPMapping(t, stuntest.ServerAt(t, a.addr), stuntest.ServerAt(t, b.addr))
	if m.Mapping != nat.EndpointIndependent || m.Tests[1].Name != "other-server" {
		t.Errorf("mapping %q (%s), tests %+v", m.Mapping, m.Reason, m.Tests)
	}
	dep := func(c, l netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(l.Addr(), c.Port()) }
	a2 := startTCPServer(t, "127.0.0.1:0", netip.AddrPort{}, dep)
	b2 := startTCPServer(t, "127.0.0.2:0", netip.AddrPort{}, dep)
	m = runTCPMapping(t, stuntest.ServerAt(t, a2.addr), stuntest.ServerAt(t, b2.addr))
	if m.Mapping != nat.MappingUnknown || m.EndpointIndependent != tri.No || m.Reason == "" {
		t.Errorf("mapping %q eim %v reason %q; want unknown, false, a reason", m.Mapping, m.EndpointIndependent, m.Reason)
	}
}

// silentTCP accepts connections and never answers: a server whose STUN
// service hangs behind a live TCP stack.
func silentTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return stunclient.AddrPortOf(ln.Addr())
}

// A silent first server is given up a gather.Survey grace after the others answered, and
// the mapping test then runs against the first server that did answer,
// within runTCPMapping's time limit.
func TestTCPMappingSilentFirstServer(t *testing.T) {
	a := startTCPServer(t, "127.0.0.1:0", netip.AddrPort{}, nil)
	b := startTCPServer(t, "127.0.0.2:0", netip.AddrPort{}, nil)
	m := runTCPMapping(t, stuntest.ServerAt(t, silentTCP(t)), stuntest.ServerAt(t, a.addr), stuntest.ServerAt(t, b.addr))
	if m.Mapping != nat.EndpointIndependent || m.Tests[0].To != a.addr {
		t.Errorf("mapping %q (%s), tests %+v; want endpoint-independent against %s", m.Mapping, m.Reason, m.Tests, a.addr)
	}
	if err := m.Servers[0].Err; err == nil || !strings.Contains(err.Error(), "grace") {
		t.Errorf("silent server err %v; want no answer within the grace period", err)
	}
	if !m.Local.Addr().IsLoopback() {
		t.Errorf("local %s; want the route's source address", m.Local)
	}
}

func TestTCPMappingOneServerIsUnknown(t *testing.T) {
	a := startTCPServer(t, "127.0.0.1:0", netip.AddrPort{}, nil)
	m := runTCPMapping(t, stuntest.ServerAt(t, a.addr))
	if m.Mapping != nat.MappingUnknown || m.EndpointIndependent != tri.Unknown || m.Reason == "" || !m.Servers[0].OK() {
		t.Errorf("mapping %q eim %v reason %q servers %+v", m.Mapping, m.EndpointIndependent, m.Reason, m.Servers)
	}
}

func TestTCPMappingNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := stunclient.AddrPortOf(ln.Addr())
	ln.Close()
	_, err = RunTCPMapping(context.Background(), TCPMappingOptions{Servers: []stunclient.Server{stuntest.ServerAt(t, closed)}})
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Errorf("err = %v, want ErrNoAnswer", err)
	}
}

// Both TCP bindings (type's fallback and the tcp command's) read replies
// through streamBinding: only a Binding response to our request counts.
func TestStreamBindingReplies(t *testing.T) {
	xor := &stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 2), Port: 4000}
	cases := []struct {
		name  string
		reply func(req *stun.Message) []byte
		ok    bool
	}{
		{"success", func(req *stun.Message) []byte {
			m, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess, xor, stun.Fingerprint)
			return m.Raw
		}, true},
		{"a request, not a response", func(req *stun.Message) []byte {
			m, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingRequest, xor, stun.Fingerprint)
			return m.Raw
		}, false},
		{"foreign transaction", func(*stun.Message) []byte {
			m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, xor, stun.Fingerprint)
			return m.Raw
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				req, err := stunclient.ReadStreamMessage(conn)
				if err != nil {
					return
				}
				conn.Write(c.reply(req))
			}()
			to := stunclient.AddrPortOf(ln.Addr())
			n, err := stdnet.NewNet()
			if err != nil {
				t.Fatal(err)
			}
			run := &typeRun{cfg: &TypeConfig{Net: n, Family: stunclient.IPv4}, deadline: time.Now().Add(2 * time.Second)}
			got := run.tcpBinding(context.Background(), to)
			if got.Replied != c.ok || (got.Err == nil) != c.ok {
				t.Fatalf("replied %v, err %v; want replied %v", got.Replied, got.Err, c.ok)
			}
			if c.ok && got.XORMapped != netip.MustParseAddrPort("203.0.113.2:4000") {
				t.Errorf("XOR-MAPPED-ADDRESS %v, want 203.0.113.2:4000", got.XORMapped)
			}
		})
	}
}

// With Bind every connection leaves from the bound address, the shared
// ones from its port.
func TestTCPMappingBind(t *testing.T) {
	port, err := freeTCPPort(stunclient.IPv4, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	bind := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := RunTCPMapping(ctx, TCPMappingOptions{Servers: []stunclient.Server{rfc5780TCP(t, nil)}, Bind: bind})
	if err != nil {
		t.Fatal(err)
	}
	if m.Mapping != nat.EndpointIndependent || m.Local != bind {
		t.Fatalf("mapping %q from %v (%s); want endpoint-independent from %v", m.Mapping, m.Local, m.Reason, bind)
	}
	for _, x := range append(m.Servers, m.Tests...) {
		if x.Local.Addr() != bind.Addr() {
			t.Errorf("%s from %v", x.Name, x.Local)
		}
	}
}

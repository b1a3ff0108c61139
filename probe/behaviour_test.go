package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/logging"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v4/vnet"
)

// serverFlaw makes the in-process test server misbehave the way real ones do.
type serverFlaw int

const (
	honest       serverFlaw = iota
	noRFC5780               // plain server: no OTHER-ADDRESS, CHANGE-REQUEST ignored
	otherSameIP             // advertises OTHER-ADDRESS on its own IP (always-online-stun #16)
	changeIgnore            // answers CHANGE-REQUESTs from the primary address (libjuice #351)
	changeDrop              // advertises OTHER-ADDRESS, silently drops CHANGE-REQUESTs
)

// rfc5780Server is a tiny STUN server on two IPs and two ports each.
type rfc5780Server struct {
	conns map[netip.AddrPort]net.PacketConn
	ips   [2]netip.Addr
	ports [2]uint16
	flaw  serverFlaw
	delay time.Duration // answer this much later (a far-away server)
}

func startServer(t *testing.T, n *vnet.Net, ips [2]string, flaw serverFlaw, delay time.Duration) *rfc5780Server {
	t.Helper()
	s := &rfc5780Server{conns: map[netip.AddrPort]net.PacketConn{}, ports: [2]uint16{3478, 3479}, flaw: flaw, delay: delay}
	for i, ip := range ips {
		s.ips[i] = netip.MustParseAddr(ip)
		for _, p := range s.ports {
			a := netip.AddrPortFrom(s.ips[i], p)
			pc, err := n.ListenPacket("udp4", a.String())
			if err != nil {
				t.Fatalf("server listen %s: %v", a, err)
			}
			s.conns[a] = pc
			t.Cleanup(func() { pc.Close() })
		}
	}
	for a, pc := range s.conns {
		go s.serve(a, pc)
	}
	return s
}

func (s *rfc5780Server) serve(self netip.AddrPort, pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		var change uint32
		if v, err := req.Get(stun.AttrChangeRequest); err == nil && len(v) == 4 {
			change = uint32(v[3])
		}
		out := self
		if change != 0 && s.flaw != noRFC5780 && s.flaw != changeIgnore {
			if s.flaw == changeDrop {
				continue
			}
			ip, port := self.Addr(), self.Port()
			if change&uint32(nat.ChangeIP) != 0 {
				ip = s.other(ip)
			}
			if change&uint32(nat.ChangePort) != 0 {
				port = s.otherPort(port)
			}
			out = netip.AddrPortFrom(ip, port)
		}
		u := from.(*net.UDPAddr)
		attrs := []stun.Setter{req, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: u.IP, Port: u.Port}, &stun.MappedAddress{IP: u.IP, Port: u.Port}}
		switch s.flaw {
		case noRFC5780:
		case otherSameIP:
			attrs = append(attrs, &stun.OtherAddress{IP: self.Addr().AsSlice(), Port: int(s.otherPort(self.Port()))})
		default:
			attrs = append(attrs, &stun.OtherAddress{IP: s.other(self.Addr()).AsSlice(), Port: int(s.otherPort(self.Port()))})
		}
		attrs = append(attrs, stun.Fingerprint)
		resp, err := stun.Build(attrs...)
		if err != nil {
			continue
		}
		if s.delay > 0 {
			time.AfterFunc(s.delay, func() { s.conns[out].WriteTo(resp.Raw, from) })
			continue
		}
		s.conns[out].WriteTo(resp.Raw, from)
	}
}

func (s *rfc5780Server) other(a netip.Addr) netip.Addr {
	if a == s.ips[0] {
		return s.ips[1]
	}
	return s.ips[0]
}

func (s *rfc5780Server) otherPort(p uint16) uint16 {
	if p == s.ports[0] {
		return s.ports[1]
	}
	return s.ports[0]
}

// world is a simulated internet with one STUN server host and a client,
// behind a NAT of the given behaviour or (nat == nil) directly connected.
func world(t *testing.T, nat *vnet.NATType, flaw serverFlaw) (*vnet.Net, []netip.AddrPort) {
	t.Helper()
	return worldWith(t, nat, flaw, 0, false)
}

// worldWith adds, when plainToo, a fast plain server on 1.2.3.6 and .7,
// and delays the main server's answers by delay.
func worldWith(t *testing.T, nat *vnet.NATType, flaw serverFlaw, delay time.Duration, plainToo bool) (*vnet.Net, []netip.AddrPort) {
	t.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.4", "1.2.3.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(srvNet); err != nil {
		t.Fatal(err)
	}
	var plainNet *vnet.Net
	if plainToo {
		if plainNet, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.6", "1.2.3.7"}}); err == nil {
			err = wan.AddNet(plainNet)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var client *vnet.Net
	if nat == nil {
		client, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.100"}})
		if err == nil {
			err = wan.AddNet(client)
		}
	} else {
		var lan *vnet.Router
		lan, err = vnet.NewRouter(&vnet.RouterConfig{CIDR: "192.168.0.0/24", StaticIPs: []string{"1.2.3.2"}, NATType: nat, LoggerFactory: quiet()})
		if err == nil {
			err = wan.AddRouter(lan)
		}
		if err == nil {
			client, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"192.168.0.2"}})
		}
		if err == nil {
			err = lan.AddNet(client)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	startServer(t, srvNet, [2]string{"1.2.3.4", "1.2.3.5"}, flaw, delay)
	if plainToo {
		startServer(t, plainNet, [2]string{"1.2.3.6", "1.2.3.7"}, noRFC5780, 0)
		return client, []netip.AddrPort{netip.MustParseAddrPort("1.2.3.6:3478"), netip.MustParseAddrPort("1.2.3.4:3478")}
	}
	return client, []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:3478")}
}

func natType(m, f vnet.EndpointDependencyType) *vnet.NATType {
	return &vnet.NATType{MappingBehavior: m, FilteringBehavior: f}
}

func TestRunTypeVNet(t *testing.T) {
	const (
		ei  = vnet.EndpointIndependent
		ad  = vnet.EndpointAddrDependent
		apd = vnet.EndpointAddrPortDependent
	)
	cases := []struct {
		name      string
		nat       *vnet.NATType
		flaw      serverFlaw
		plain     bool // ask two plain servers (both IPs)
		typ       nat.NATType
		mapping   nat.Mapping
		filtering nat.Filtering
		rfc5780   nat.RFC5780
	}{
		{"open internet", nil, honest, false, nat.TypeOpenInternet, nat.EndpointIndependent, nat.EndpointIndependent, "verified"},
		{"full cone", natType(ei, ei), honest, false, nat.TypeFullCone, nat.EndpointIndependent, nat.EndpointIndependent, "verified"},
		{"restricted cone", natType(ei, ad), honest, false, nat.TypeRestrictedCone, nat.EndpointIndependent, nat.AddressDependent, "verified"},
		{"port-restricted cone", natType(ei, apd), honest, false, nat.TypePortRestrictedCone, nat.EndpointIndependent, nat.AddressAndPortDependent, "verified"},
		{"symmetric, address-dependent mapping", natType(ad, apd), honest, false, nat.TypeSymmetric, nat.AddressDependent, nat.AddressAndPortDependent, "advertised"},
		{"symmetric", natType(apd, apd), honest, false, nat.TypeSymmetric, nat.AddressAndPortDependent, nat.AddressAndPortDependent, "advertised"},
		{"symmetric with endpoint-independent filtering", natType(apd, ei), honest, false, nat.TypeSymmetric, nat.AddressAndPortDependent, nat.EndpointIndependent, "verified"},
		{"plain servers, cone", natType(ei, apd), noRFC5780, true, nat.TypeUnknown, nat.EndpointIndependent, nat.FilteringUnknown, "absent"},
		{"plain servers, symmetric", natType(apd, apd), noRFC5780, true, nat.TypeSymmetric, nat.AddressAndPortDependent, nat.FilteringUnknown, "absent"},
		{"OTHER-ADDRESS on own IP", natType(ei, apd), otherSameIP, false, nat.TypeUnknown, nat.MappingUnknown, nat.FilteringUnknown, "invalid"},
		{"CHANGE-REQUEST answered from primary", natType(ei, apd), changeIgnore, false, nat.TypeUnknown, nat.EndpointIndependent, nat.FilteringUnknown, "invalid"},
		{"CHANGE-REQUEST dropped", natType(ei, apd), changeDrop, false, nat.TypeUnknown, nat.EndpointIndependent, nat.FilteringUnknown, "advertised"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, servers := world(t, c.nat, c.flaw)
			if c.plain {
				// Both IPs and both ports of the plain server: mapping
				// can then be told fully without RFC 5780.
				servers = append(servers, netip.MustParseAddrPort("1.2.3.5:3478"), netip.MustParseAddrPort("1.2.3.4:3479"))
			}
			res, err := runType(context.Background(), TypeConfig{Net: n, Family: stunclient.IPv4, Servers: servers, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("RunType: %v", err)
			}
			v := res.Verdict
			if v.Type != c.typ || v.Mapping != c.mapping || v.Filtering != c.filtering || v.RFC5780 != c.rfc5780 {
				t.Errorf("got type=%s mapping=%s filtering=%s rfc5780=%s, want %s %s %s %s\nevidence:\n%v",
					v.Type, v.Mapping, v.Filtering, v.RFC5780, c.typ, c.mapping, c.filtering, c.rfc5780, v.Evidence)
			}
			wantNAT := c.nat != nil
			if v.NAT != tri.Of(wantNAT) {
				t.Errorf("nat = %s, want %v", v.NAT, wantNAT)
			}
		})
	}
}

func TestRunTypeNoAnswer(t *testing.T) {
	n, _ := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), honest)
	dead := []netip.AddrPort{netip.MustParseAddrPort("1.2.3.9:3478")}
	res, err := runType(context.Background(), TypeConfig{Net: n, Family: stunclient.IPv4, Servers: dead, Timeout: 600 * time.Millisecond})
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	if res == nil || res.Type != nat.TypeUnknown {
		t.Fatalf("result = %+v, want type unknown", res)
	}
}

// TestRunTypeDeadServerCostsNoTimeout checks that a dead server listed
// first does not hold the run until the timeout.
func TestRunTypeDeadServerCostsNoTimeout(t *testing.T) {
	n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointAddrPortDependent), honest)
	servers = append([]netip.AddrPort{netip.MustParseAddrPort("1.2.3.9:3478")}, servers...)
	res, err := runType(context.Background(), TypeConfig{Net: n, Family: stunclient.IPv4, Servers: servers, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("RunType: %v", err)
	}
	if res.Type != nat.TypePortRestrictedCone {
		t.Errorf("type = %s, want %s", res.Type, nat.TypePortRestrictedCone)
	}
	if res.Duration > 30*time.Second {
		t.Errorf("run took %v: the dead server cost the timeout", res.Duration)
	}
}

// quiet silences vnet's logging.
func quiet() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

// TestRunTypeWaitsForFarRFC5780Server: a plain server that answers first
// must not end the binding round before a slower RFC 5780 server answers,
// or filtering would needlessly be unknown.
func TestRunTypeWaitsForFarRFC5780Server(t *testing.T) {
	n, servers := worldWith(t, natType(vnet.EndpointIndependent, vnet.EndpointAddrPortDependent), honest, 150*time.Millisecond, true)
	res, err := runType(context.Background(), TypeConfig{Net: n, Family: stunclient.IPv4, Servers: servers, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("runType: %v", err)
	}
	if res.Primary != servers[1] || res.Type != nat.TypePortRestrictedCone {
		t.Errorf("primary %s type %s, want %s %s\n%v\n%+v", res.Primary, res.Type, servers[1], nat.TypePortRestrictedCone, res.Evidence, res.Tests)
	}
	if other := res.Test(nat.TestServer); other == nil || !other.Replied || other.To != servers[0] {
		t.Errorf("the plain server's answer is missing: %+v", other)
	}
}

// TestRunTypeInterrupted: cancelling the context (Ctrl-C) ends the run
// with context.Canceled, not with a verdict or a no-answer error.
func TestRunTypeInterrupted(t *testing.T) {
	n, _ := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), honest)
	dead := []netip.AddrPort{netip.MustParseAddrPort("1.2.3.9:3478")}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := runType(ctx, TypeConfig{Net: n, Family: stunclient.IPv4, Servers: dead, Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// With Bind, every socket of the run leaves from the bound address, the
// mapping socket from its port, and the result lists them.
func TestRunTypeBind(t *testing.T) {
	n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointAddrPortDependent), honest)
	bind := netip.MustParseAddrPort("192.168.0.2:40000")
	res, err := runType(context.Background(), TypeConfig{Net: n, Family: stunclient.IPv4, Servers: servers, Timeout: 5 * time.Second, Bind: bind})
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != nat.TypePortRestrictedCone || res.Local != bind {
		t.Errorf("type %s, local %v; want port-restricted-cone from %v", res.Type, res.Local, bind)
	}
	uses := map[string]int{}
	for _, s := range res.Sockets {
		uses[s.Use]++
		if s.Local.Addr() != bind.Addr() {
			t.Errorf("%s socket on %v, not on %v", s.Use, s.Local, bind.Addr())
		}
		if (s.Use == "mapping") != (s.Local.Port() == bind.Port()) {
			t.Errorf("%s socket on port %d", s.Use, s.Local.Port())
		}
	}
	if uses["mapping"] != 1 || uses["filtering"] != 4 || uses["verify"] != 2 || uses["hairpin"] != 2 {
		t.Errorf("sockets %+v", res.Sockets)
	}
	for _, tr := range res.Tests {
		if tr.Local.IsValid() && tr.Local.Addr() != bind.Addr() {
			t.Errorf("test %s from %v", tr.Name, tr.Local)
		}
	}
}

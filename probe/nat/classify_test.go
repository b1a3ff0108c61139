package nat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

var (
	prim     = netip.MustParseAddrPort("203.0.113.10:3478")
	other    = netip.MustParseAddrPort("203.0.113.11:3479")
	altIP    = netip.AddrPortFrom(other.Addr(), prim.Port())
	altPort  = netip.AddrPortFrom(prim.Addr(), other.Port())
	local    = netip.MustParseAddrPort("192.168.1.2:40000")
	wild     = netip.MustParseAddrPort("0.0.0.0:40000")
	pub      = netip.MustParseAddrPort("198.51.100.7:40000")
	pub2     = netip.MustParseAddrPort("198.51.100.7:50001")
	pub3     = netip.MustParseAddrPort("198.51.100.7:50002")
	hostLAN  = []HostAddr{{Addr: netip.MustParseAddr("127.0.0.1"), Iface: "lo"}, {Addr: local.Addr(), Iface: "eth0"}}
	plainSrv = netip.MustParseAddrPort("192.0.2.20:3478")
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// bind is a reply on the mapping socket.
func bind(name TestName, to, mapped netip.AddrPort) TestResult {
	return TestResult{Name: name, Local: local, To: to, Replied: true, From: to, XORMapped: mapped, Attempts: 1}
}

func bind1(mapped netip.AddrPort, oth netip.AddrPort) TestResult {
	t := bind(TestBinding, prim, mapped)
	t.OtherAddress = oth
	return t
}

// change is a CHANGE-REQUEST test; from invalid means silence.
func change(name TestName, expect, from netip.AddrPort) TestResult {
	// Silence comes with the plain requests beside it answered (the
	// server was answering this socket), after 150 ms of listening.
	t := TestResult{Name: name, Local: ap("192.168.1.2:40001"), To: prim, Expect: expect, Attempts: 5,
		Witnessed: 2, Listened: 150 * time.Millisecond}
	if from.IsValid() {
		t.Replied, t.From, t.XORMapped, t.Attempts = true, from, ap("198.51.100.7:40001"), 1
	}
	return t
}

var none netip.AddrPort

// rfc5780 builds a full run against a server with RFC 5780 support.
func rfc5780(m1, m2, m3 netip.AddrPort, ipPortFrom, portFrom, verifyFrom netip.AddrPort) []TestResult {
	return []TestResult{
		bind1(m1, other),
		bind(TestMappingAltIP, altIP, m2),
		bind(TestMappingAltIPPort, other, m3),
		change(TestFilterIPPort, other, ipPortFrom),
		change(TestFilterPort, altPort, portFrom),
		change(TestFilterVerify, other, verifyFrom),
	}
}

func TestClassify(t *testing.T) {
	T, F := tri.Yes, tri.No
	cases := []struct {
		name      string
		obs       Observations
		typ       NATType
		mapping   Mapping
		filtering Filtering
		nat       tri.Bool
		rfc5780   RFC5780
		public    string
		evidence  string // substring one evidence line must hold
	}{
		{
			name: "full cone",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, other, altPort, other), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeFullCone, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: T, rfc5780: "verified", public: "198.51.100.7:40000",
		},
		{
			name: "restricted cone",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, none, altPort, other), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeRestrictedCone, mapping: EndpointIndependent, filtering: AddressDependent, nat: T, rfc5780: "verified",
		},
		{
			name: "port-restricted cone",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, none, none, other), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypePortRestrictedCone, mapping: EndpointIndependent, filtering: AddressAndPortDependent, nat: T, rfc5780: "verified",
		},
		{
			name: "cone mapping but server drops CHANGE-REQUEST: filtering unknown",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, none, none, none), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeUnknown, mapping: EndpointIndependent, filtering: FilteringUnknown, nat: T, rfc5780: "advertised",
			evidence: "did not answer a CHANGE-REQUEST even after",
		},
		{
			name: "symmetric, address-and-port-dependent mapping",
			obs:  Observations{Tests: rfc5780(pub, pub2, pub3, none, none, none), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeSymmetric, mapping: AddressAndPortDependent, filtering: AddressAndPortDependent, nat: T, rfc5780: "advertised",
			evidence: "advertised, not provable",
		},
		{
			name: "symmetric, address-dependent mapping",
			obs:  Observations{Tests: rfc5780(pub, pub2, pub2, none, none, none), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeSymmetric, mapping: AddressDependent, filtering: AddressAndPortDependent, nat: T, rfc5780: "advertised",
		},
		{
			name: "symmetric with address-dependent filtering",
			obs:  Observations{Tests: rfc5780(pub, pub2, pub3, none, altPort, none), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeSymmetric, mapping: AddressAndPortDependent, filtering: AddressDependent, nat: T, rfc5780: "verified",
		},
		{
			name: "symmetric, test III lost: mapping unknown but varies",
			obs: Observations{Tests: func() []TestResult {
				ts := rfc5780(pub, pub2, pub3, none, none, none)
				ts[2].Replied = false
				return ts
			}(), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeSymmetric, mapping: MappingUnknown, filtering: AddressAndPortDependent, nat: T, rfc5780: "advertised",
		},
		{
			name: "symmetric, alternate address never answered: filtering unknown",
			obs: Observations{Tests: func() []TestResult {
				ts := rfc5780(pub, pub2, pub3, none, none, none)
				ts[1].Replied, ts[2].Replied = false, false
				ts = append(ts, bind(TestServer, plainSrv, pub3))
				return ts
			}(), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeSymmetric, mapping: MappingUnknown, filtering: FilteringUnknown, nat: T, rfc5780: "advertised",
		},
		{
			name: "open internet",
			obs: Observations{Tests: rfc5780(pub, pub, pub, other, altPort, other), RouteSource: pub.Addr(),
				HostAddrs: []HostAddr{{Addr: pub.Addr(), Iface: "eth0"}}},
			typ: TypeOpenInternet, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: F, rfc5780: "verified",
		},
		{
			name: "firewall without NAT",
			obs: Observations{Tests: rfc5780(pub, pub, pub, none, none, other), RouteSource: pub.Addr(),
				HostAddrs: []HostAddr{{Addr: pub.Addr(), Iface: "eth0"}}},
			typ: TypeSymmetricFirewall, mapping: EndpointIndependent, filtering: AddressAndPortDependent, nat: F, rfc5780: "verified",
		},
		{
			name: "no NAT recognised through the route source though the socket is on the wildcard",
			obs: Observations{Tests: func() []TestResult {
				ts := rfc5780(pub, pub, pub, other, altPort, other)
				for i := range ts {
					ts[i].Local = wild
				}
				return ts
			}(), RouteSource: pub.Addr()},
			typ: TypeOpenInternet, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: F, rfc5780: "verified",
		},
		{
			name: "wildcard is never taken as the host's address",
			obs: Observations{Tests: rfc5780(pub, pub, pub, other, altPort, other),
				HostAddrs: []HostAddr{{Addr: netip.IPv4Unspecified(), Iface: "x"}, {Addr: local.Addr(), Iface: "eth0"}}},
			typ: TypeFullCone, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: T, rfc5780: "verified",
		},
		{
			name: "a mapped address of 0.0.0.0 is not believed",
			obs: Observations{Tests: rfc5780(ap("0.0.0.0:40000"), ap("0.0.0.0:40000"), ap("0.0.0.0:40000"), other, altPort, other),
				HostAddrs: []HostAddr{{Addr: netip.IPv4Unspecified(), Iface: "x"}, {Addr: local.Addr(), Iface: "eth0"}}},
			typ: TypeUnknown, mapping: MappingUnknown, filtering: EndpointIndependent, nat: tri.Unknown, rfc5780: "verified",
			evidence: "impossible public address 0.0.0.0:40000",
		},
		{
			name: "host addresses unreadable: NAT unknown, type unknown",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, other, altPort, other)},
			typ:  TypeUnknown, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: tri.Unknown, rfc5780: "verified",
		},
		{
			name: "OTHER-ADDRESS on the primary IP: filtering unknown even with a reply",
			obs: Observations{Tests: []TestResult{
				bind1(pub, ap("203.0.113.10:3479")),
				change(TestFilterIPPort, ap("203.0.113.10:3479"), ap("203.0.113.10:3479")),
				change(TestFilterPort, ap("203.0.113.10:3479"), ap("203.0.113.10:3479")),
			}, RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeUnknown, mapping: MappingUnknown, filtering: FilteringUnknown, nat: T, rfc5780: "invalid", evidence: "without a second IP",
		},
		{
			name: "CHANGE-REQUEST answered from the primary address: filtering unknown",
			obs:  Observations{Tests: rfc5780(pub, pub, pub, prim, prim, prim), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeUnknown, mapping: EndpointIndependent, filtering: FilteringUnknown, nat: T, rfc5780: "invalid", evidence: "does not honour CHANGE-REQUEST",
		},
		{
			name: "CHANGE-REQUEST answered with an error: filtering unknown",
			obs: Observations{Tests: func() []TestResult {
				ts := rfc5780(pub, pub, pub, none, prim, none)
				ts[4].ErrorCode = 420
				return ts
			}(), RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeUnknown, mapping: EndpointIndependent, filtering: FilteringUnknown, nat: T, rfc5780: "invalid", evidence: "error 420",
		},
		{
			name: "plain servers agree: mapping endpoint-independent, filtering unknown",
			obs: Observations{Tests: []TestResult{bind(TestBinding, prim, pub), bind(TestServer, plainSrv, pub)},
				RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeUnknown, mapping: EndpointIndependent, filtering: FilteringUnknown, nat: T, rfc5780: "absent",
		},
		{
			name: "plain servers disagree: symmetric, mapping not named",
			obs: Observations{Tests: []TestResult{bind(TestBinding, prim, pub), bind(TestServer, plainSrv, pub2)},
				RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeSymmetric, mapping: MappingUnknown, filtering: FilteringUnknown, nat: T, rfc5780: "absent", evidence: "no second port",
		},
		{
			name: "plain servers disagree, two ports of one IP agree: address-dependent",
			obs: Observations{Tests: []TestResult{bind(TestBinding, prim, pub), bind(TestServer, altPort, pub), bind(TestServer, plainSrv, pub2)},
				RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeSymmetric, mapping: AddressDependent, filtering: FilteringUnknown, nat: T, rfc5780: "absent",
		},
		{
			name: "plain servers all disagree: address-and-port-dependent",
			obs: Observations{Tests: []TestResult{bind(TestBinding, prim, pub), bind(TestServer, altPort, pub3), bind(TestServer, plainSrv, pub2)},
				RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeSymmetric, mapping: AddressAndPortDependent, filtering: FilteringUnknown, nat: T, rfc5780: "absent",
		},
		{
			name: "one plain server: mapping unknown",
			obs:  Observations{Tests: []TestResult{bind(TestBinding, prim, pub)}, RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ:  TypeUnknown, mapping: MappingUnknown, filtering: FilteringUnknown, nat: T, rfc5780: "absent",
		},
		{
			name: "UDP blocked, TCP answers",
			obs: Observations{Tests: []TestResult{
				{Name: TestBinding, Local: local, To: prim, Attempts: 5},
				{Name: TestTCP, Local: ap("192.168.1.2:41000"), To: prim, Replied: true, From: prim, XORMapped: ap("198.51.100.7:41000")},
			}, RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeUDPBlocked, mapping: MappingUnknown, filtering: FilteringUnknown, nat: T, rfc5780: "absent", public: "198.51.100.7:41000",
		},
		{
			name: "nothing answers",
			obs: Observations{Tests: []TestResult{
				{Name: TestBinding, Local: local, To: prim, Attempts: 5},
				{Name: TestTCP, Local: local, To: prim, Err: errors.New("connection refused")},
			}, RouteSource: local.Addr(), HostAddrs: hostLAN},
			typ: TypeUnknown, mapping: MappingUnknown, filtering: FilteringUnknown, nat: tri.Unknown, rfc5780: "absent", evidence: "no STUN server answered",
		},
		{
			name: "IPv4-mapped IPv6 addresses shown and compared as IPv4",
			obs: Observations{Tests: rfc5780(ap("[::ffff:198.51.100.7]:40000"), pub, pub, other, altPort, other),
				RouteSource: netip.MustParseAddr("::ffff:198.51.100.7")},
			typ: TypeOpenInternet, mapping: EndpointIndependent, filtering: EndpointIndependent, nat: F, rfc5780: "verified", public: "198.51.100.7:40000",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Classify(c.obs)
			if v.Type != c.typ || v.Mapping != c.mapping || v.Filtering != c.filtering || v.RFC5780 != c.rfc5780 {
				t.Errorf("got type=%s mapping=%s filtering=%s rfc5780=%s, want %s %s %s %s\n%s",
					v.Type, v.Mapping, v.Filtering, v.RFC5780, c.typ, c.mapping, c.filtering, c.rfc5780, strings.Join(v.Evidence, "\n"))
			}
			if !sameBool(v.NAT, c.nat) {
				t.Errorf("nat = %s, want %s", showBool(v.NAT), showBool(c.nat))
			}
			if c.public != "" && v.Public.String() != c.public {
				t.Errorf("public = %s, want %s", v.Public, c.public)
			}
			if c.evidence != "" && !strings.Contains(strings.Join(v.Evidence, "\n"), c.evidence) {
				t.Errorf("no evidence line holds %q:\n%s", c.evidence, strings.Join(v.Evidence, "\n"))
			}
			if v.Outlook == "" {
				t.Error("empty outlook")
			}
		})
	}
}

func TestClassifyFindings(t *testing.T) {
	T, F := tri.Yes, tri.No
	natted := func(mod func(*Observations)) Observations {
		o := Observations{Tests: rfc5780(pub, pub, pub, none, none, other), RouteSource: local.Addr(), HostAddrs: hostLAN}
		mod(&o)
		return o
	}
	hops := func(reached int, hs ...string) func(*Observations) {
		return func(o *Observations) {
			o.HopsTested, o.ReachedTTL = true, reached
			for i, h := range hs {
				if h != "" {
					o.Hops = append(o.Hops, Hop{TTL: i + 1, From: netip.MustParseAddr(h)})
				}
			}
		}
	}
	cases := []struct {
		name  string
		obs   Observations
		field func(Verdict) tri.Bool
		want  tri.Bool
	}{
		{"cgnat: hop 2 in 100.64.0.0/10", natted(hops(3, "192.168.1.1", "100.64.0.1")), cgnatOf, T},
		{"cgnat: 100.100.0.1 is in /10 though not in /22", natted(hops(3, "192.168.1.1", "100.100.0.1")), cgnatOf, T},
		{"cgnat: 100.127.255.254 is the top of the /10", natted(hops(3, "192.168.1.1", "100.127.255.254")), cgnatOf, T},
		{"cgnat: 100.128.0.1 is public, outside the /10", natted(hops(0, "192.168.1.1", "100.128.0.1")), cgnatOf, F},
		{"cgnat: private hop after the gateway is a second NAT", natted(hops(4, "192.168.1.1", "10.0.0.1", "198.51.100.1")), cgnatOf, T},
		{"cgnat: private router after the public side does not count", natted(hops(5, "192.168.1.1", "198.51.100.1", "10.0.0.1")), cgnatOf, F},
		{"cgnat: only the gateway, then the server", natted(hops(2, "192.168.1.1")), cgnatOf, F},
		{"cgnat: gateway only, path never seen leaving private space", natted(hops(0, "192.168.1.1")), cgnatOf, tri.Unknown},
		{"cgnat: silent routers", natted(hops(0)), cgnatOf, tri.Unknown},
		{"cgnat: not tested", natted(func(*Observations) {}), cgnatOf, tri.Unknown},
		{"cgnat: host address in carrier space", natted(func(o *Observations) {
			o.RouteSource = netip.MustParseAddr("100.72.1.2")
			o.HostAddrs = []HostAddr{{Addr: o.RouteSource, Iface: "wwan0"}}
		}), cgnatOf, T},
		{"cgnat: tailscale address on a tunnel is not carrier NAT", natted(func(o *Observations) {
			o.RouteSource = netip.MustParseAddr("100.101.102.103")
			o.HostAddrs = []HostAddr{{Addr: o.RouteSource, Iface: "tailscale0", Tunnel: true}}
		}), cgnatOf, tri.Unknown},
		{"cgnat: tailscale address on a tunnel, path probed", natted(func(o *Observations) {
			o.RouteSource = netip.MustParseAddr("100.101.102.103")
			o.HostAddrs = []HostAddr{{Addr: o.RouteSource, Iface: "tailscale0", Tunnel: true}}
			hops(2, "192.168.1.1")(o)
		}), cgnatOf, F},
		{"cgnat: no NAT means no carrier NAT", Observations{Tests: rfc5780(pub, pub, pub, none, none, other), RouteSource: pub.Addr()}, cgnatOf, F},
		{"hairpin: received", natted(func(o *Observations) {
			o.Tests = append(o.Tests, TestResult{Name: TestHairpin, To: pub, Replied: true, From: pub2, Attempts: 1})
		}), hairpinOf, T},
		{"hairpin: silent", natted(func(o *Observations) {
			o.Tests = append(o.Tests, TestResult{Name: TestHairpin, To: pub, Attempts: 5})
		}), hairpinOf, F},
		{"hairpin: could not run", natted(func(o *Observations) {
			o.Tests = append(o.Tests, TestResult{Name: TestHairpin, Err: errors.New("no mapping")})
		}), hairpinOf, tri.Unknown},
		{"hairpin: not run", natted(func(*Observations) {}), hairpinOf, tri.Unknown},
		{"alg: MAPPED-ADDRESS rewritten", natted(func(o *Observations) { o.Tests[0].Mapped = local }), algOf, T},
		{"alg: both agree", natted(func(o *Observations) { o.Tests[0].Mapped = pub }), algOf, F},
		{"alg: no MAPPED-ADDRESS, not tested", natted(func(*Observations) {}), algOf, tri.Unknown},
		{"port preservation: kept", natted(func(*Observations) {}), ppOf, T},
		{"port preservation: changed", Observations{Tests: rfc5780(pub2, pub2, pub2, none, none, other), RouteSource: local.Addr(), HostAddrs: hostLAN}, ppOf, F},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Classify(c.obs)
			if got := c.field(v); !sameBool(got, c.want) {
				t.Errorf("got %s, want %s\n%s", showBool(got), showBool(c.want), strings.Join(v.Evidence, "\n"))
			}
		})
	}
}

func cgnatOf(v Verdict) tri.Bool   { return v.CGNAT }
func hairpinOf(v Verdict) tri.Bool { return v.Hairpinning }
func algOf(v Verdict) tri.Bool     { return v.ALG }
func ppOf(v Verdict) tri.Bool      { return v.PortPreservation }

func TestIsShared(t *testing.T) {
	cases := map[string]bool{
		"100.63.255.255": false, "100.64.0.0": true, "100.64.3.255": true, "100.64.4.0": true,
		"100.100.100.100": true, "100.127.255.255": true, "100.128.0.0": false,
		"::ffff:100.64.0.1": true, "10.0.0.1": false, "2001:db8::1": false,
	}
	for a, want := range cases {
		t.Run(a, func(t *testing.T) {
			if got := IsShared(netip.MustParseAddr(a)); got != want {
				t.Errorf("IsShared(%s) = %v, want %v", a, got, want)
			}
		})
	}
}

// TestOutlookCoversEveryType: every type but TypeUnknown has an outlook of
// its own, not the fallback that an unlisted type gets.
func TestOutlookCoversEveryType(t *testing.T) {
	if got := outlook(TypeUnknown); got != unknownOutlook {
		t.Errorf("outlook(%s) = %q, want the fallback %q", TypeUnknown, got, unknownOutlook)
	}
	if got := outlook("no-such-type"); got != unknownOutlook {
		t.Errorf("outlook of an unlisted type = %q, want the fallback %q", got, unknownOutlook)
	}
	for _, typ := range Types {
		if typ == TypeUnknown {
			continue
		}
		t.Run(string(typ), func(t *testing.T) {
			if got := outlook(typ); got == "" || got == unknownOutlook {
				t.Errorf("outlook(%s) = %q: no outlook of its own", typ, got)
			}
		})
	}
}

func sameBool(a, b tri.Bool) bool { return a == b }

func showBool(b tri.Bool) string {
	switch b {
	case tri.Yes:
		return "true"
	case tri.No:
		return "false"
	}
	return "null"
}

func TestHairpinNotApplicableWithoutNAT(t *testing.T) {
	o := Observations{Tests: rfc5780(pub, pub, pub, other, altPort, other), RouteSource: pub.Addr()}
	o.Tests = append(o.Tests, TestResult{Name: TestHairpin, To: pub, Replied: true, From: pub})
	if v := Classify(o); v.Hairpinning != tri.Unknown {
		t.Errorf("hairpinning = %s without NAT, want null", showBool(v.Hairpinning))
	}
}

func TestClassifyRFC3489ServerWithoutXORMapped(t *testing.T) {
	ts := rfc5780(pub, pub, pub, none, none, other)
	for i := range ts {
		ts[i].Mapped, ts[i].XORMapped = ts[i].XORMapped, netip.AddrPort{}
	}
	v := Classify(Observations{Tests: ts, RouteSource: local.Addr(), HostAddrs: hostLAN})
	if v.Type != TypePortRestrictedCone || v.Public != pub || v.ALG != tri.Unknown {
		t.Errorf("type %s public %s alg %s, want port-restricted-cone %s null", v.Type, v.Public, showBool(v.ALG), pub)
	}
}

// TestRFC5780Support: the support alone is what Classify reports, with a
// reason for each degree.
func TestRFC5780Support(t *testing.T) {
	withLAN := func(ts []TestResult) Observations {
		return Observations{Tests: ts, RouteSource: local.Addr(), HostAddrs: hostLAN}
	}
	cases := []struct {
		name string
		obs  Observations
		want RFC5780
	}{
		{"nothing answered", withLAN([]TestResult{{Name: TestBinding, Local: local, To: prim, Attempts: 5}}), RFC5780Absent},
		{"plain server", withLAN([]TestResult{bind(TestBinding, prim, pub)}), RFC5780Absent},
		{"OTHER-ADDRESS on the primary IP", withLAN([]TestResult{bind1(pub, ap("203.0.113.10:3479"))}), RFC5780Invalid},
		{"CHANGE-REQUEST tests silent", withLAN(rfc5780(pub, pub2, pub3, none, none, none)), RFC5780Advertised},
		{"changed reply from the changed address", withLAN(rfc5780(pub, pub, pub, none, none, other)), RFC5780Verified},
		{"changed reply from the primary", withLAN(rfc5780(pub, pub, pub, other, prim, other)), RFC5780Invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := RFC5780Support(c.obs)
			if got != c.want || why == "" {
				t.Errorf("RFC5780Support = %s (%q), want %s", got, why, c.want)
			}
			if v := Classify(c.obs); v.RFC5780 != got {
				t.Errorf("Classify says %s, RFC5780Support %s", v.RFC5780, got)
			}
		})
	}
}

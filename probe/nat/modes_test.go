package nat

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The misbehaving servers of internal/stuntest (Modes), as the
// observations a run against each would make behind each NAT: every mode
// must give the NAT's true verdict or unknown, never a wrong one.

type simNAT struct {
	name      string
	typ       NATType
	mapping   Mapping
	filtering Filtering
	// mapped is the mapping the NAT gives the mapping socket towards a
	// destination; passes whether a reply from src reaches a socket that
	// contacted the endpoints sent.
	mapped func(dst netip.AddrPort) netip.AddrPort
	passes func(src netip.AddrPort, sent []netip.AddrPort) bool
}

func contactedIP(src netip.AddrPort, sent []netip.AddrPort) bool {
	for _, s := range sent {
		if s.Addr() == src.Addr() {
			return true
		}
	}
	return false
}

func contacted(src netip.AddrPort, sent []netip.AddrPort) bool {
	for _, s := range sent {
		if s == src {
			return true
		}
	}
	return false
}

var simNATs = []simNAT{
	{"full-cone", TypeFullCone, EndpointIndependent, EndpointIndependent,
		func(netip.AddrPort) netip.AddrPort { return pub }, func(netip.AddrPort, []netip.AddrPort) bool { return true }},
	{"restricted-cone", TypeRestrictedCone, EndpointIndependent, AddressDependent,
		func(netip.AddrPort) netip.AddrPort { return pub }, contactedIP},
	{"port-restricted-cone", TypePortRestrictedCone, EndpointIndependent, AddressAndPortDependent,
		func(netip.AddrPort) netip.AddrPort { return pub }, contacted},
	{"symmetric", TypeSymmetric, AddressAndPortDependent, AddressAndPortDependent,
		func(d netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(pub.Addr(), 50000+d.Port()%100+uint16(d.Addr().As4()[3]))
		},
		// Each destination gets its own mapping: a reply reaches only the
		// mapping of the endpoint it comes from, and the verify socket's
		// change leg went to the primary only.
		func(src netip.AddrPort, sent []netip.AddrPort) bool { return len(sent) > 0 && src == sent[len(sent)-1] }},
}

// simServer is a server's behaviour, as stuntest.Modes script it.
type simServer struct {
	name    string
	other   netip.AddrPort                               // OTHER-ADDRESS advertised
	lie     func(n int, m netip.AddrPort) netip.AddrPort // the mapped address named in the n-th answer
	honour  func(ChangeFlags) ChangeFlags
	slow    time.Duration // extra delay of changed replies
	limited bool          // a rate limiter drops the CHANGE-REQUEST tests and their witnesses
	dead    bool          // OTHER-ADDRESS and the alternate IP never answer
}

var dead = ap("203.0.113.99:3479")

var simServers = []simServer{
	{name: "honest"},
	{name: "inconsistent-mapping", lie: func(n int, m netip.AddrPort) netip.AddrPort {
		if n%2 == 0 {
			return netip.AddrPortFrom(m.Addr(), m.Port()+1000+uint16(n))
		}
		return m
	}},
	{name: "other-own-ip", other: altPort, honour: func(c ChangeFlags) ChangeFlags { return c &^ ChangeIP }},
	{name: "other-dead", other: dead, dead: true},
	{name: "change-ignored", honour: func(ChangeFlags) ChangeFlags { return 0 }},
	{name: "change-port-only", honour: func(c ChangeFlags) ChangeFlags { return c & ChangePort }},
	{name: "change-ip-only", honour: func(c ChangeFlags) ChangeFlags { return c & ChangeIP }},
	{name: "change-slow", slow: 300 * time.Millisecond},
	{name: "change-slow-edge", slow: 100 * time.Millisecond}, // replies inside the window, barely
	{name: "rate-limited", limited: true},
	{name: "wrong-family", lie: func(_ int, m netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("2001:db8::2"), m.Port())
	}},
	{name: "mapped-zero", lie: func(_ int, m netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), m.Port())
	}},
}

// simRun builds the observations of one run: the primary behaves as s,
// and with honest, two plain honest servers on other IPs (one of them on
// two ports) answer as well.
func simRun(n simNAT, s simServer, honest bool) Observations {
	oth := other
	if s.other.IsValid() {
		oth = s.other
	}
	answers := 0
	named := func(d netip.AddrPort) netip.AddrPort {
		answers++
		m := n.mapped(d)
		if s.lie != nil {
			m = s.lie(answers, m)
		}
		return m
	}
	var ts []TestResult
	b := bind(TestBinding, prim, named(prim))
	b.OtherAddress = oth
	ts = append(ts, b, bind(TestRepeat, prim, named(prim)))
	alt, o := netip.AddrPortFrom(oth.Addr(), prim.Port()), oth
	for _, d := range []struct {
		name TestName
		to   netip.AddrPort
	}{{TestMappingAltIP, alt}, {TestRepeat, alt}, {TestMappingAltIPPort, o}, {TestRepeat, o}} {
		switch {
		case oth.Addr() == prim.Addr():
			// natcheck runs tests II and III only towards a genuine
			// OTHER-ADDRESS; classification must not need that, though.
			ts = append(ts, bind(d.name, d.to, named(d.to)))
		case s.dead:
			ts = append(ts, TestResult{Name: d.name, Local: local, To: d.to, Attempts: 6})
		default:
			ts = append(ts, bind(d.name, d.to, named(d.to)))
		}
	}
	if honest {
		for _, p := range []netip.AddrPort{ap("192.0.2.20:3478"), ap("192.0.2.20:3479"), ap("192.0.2.30:3478")} {
			ts = append(ts, bind(TestServer, p, n.mapped(p)), bind(TestRepeat, p, n.mapped(p)))
		}
	}
	// The CHANGE-REQUEST tests: the real sockets of the server are prim,
	// altPort, altIP and the genuine other, whatever it advertises.
	source := func(c ChangeFlags) netip.AddrPort {
		if s.honour != nil {
			c = s.honour(c)
		}
		a, p := prim.Addr(), prim.Port()
		if c&ChangeIP != 0 {
			a = other.Addr()
		}
		if c&ChangePort != 0 {
			p = other.Port()
		}
		return netip.AddrPortFrom(a, p)
	}
	const window = 150 * time.Millisecond
	ct := func(name TestName, c ChangeFlags, expect netip.AddrPort, sent []netip.AddrPort) TestResult {
		from := source(c)
		if s.limited || s.slow >= window || !n.passes(from, sent) {
			t := change(name, expect, none)
			if s.limited {
				t.Witnessed = 0
			}
			return t
		}
		t := change(name, expect, from)
		t.RTT = time.Millisecond + s.slow
		return t
	}
	ts = append(ts,
		ct(TestFilterIPPort, ChangeIP|ChangePort, oth, []netip.AddrPort{prim}),
		ct(TestFilterPort, ChangePort, netip.AddrPortFrom(prim.Addr(), oth.Port()), []netip.AddrPort{prim}))
	verifySent := []netip.AddrPort{prim}
	if !s.dead {
		verifySent = []netip.AddrPort{oth, prim}
	}
	ts = append(ts, ct(TestFilterVerify, ChangeIP|ChangePort, oth, verifySent))
	return Observations{Tests: ts, RouteSource: local.Addr(), HostAddrs: hostLAN}
}

func TestClassifyMisbehavingServers(t *testing.T) {
	for _, n := range simNATs {
		for _, s := range simServers {
			for _, honest := range []bool{false, true} {
				name := n.name + "/" + s.name
				if honest {
					name += "+honest-plain"
				}
				t.Run(name, func(t *testing.T) {
					v := Classify(simRun(n, s, honest))
					why := "\n  " + strings.Join(v.Evidence, "\n  ")
					if v.Type != n.typ && v.Type != TypeUnknown {
						t.Errorf("type %s, want %s or unknown%s", v.Type, n.typ, why)
					}
					if v.Mapping != n.mapping && v.Mapping != MappingUnknown {
						t.Errorf("mapping %s, want %s or unknown%s", v.Mapping, n.mapping, why)
					}
					if v.Filtering != n.filtering && v.Filtering != FilteringUnknown {
						t.Errorf("filtering %s, want %s or unknown%s", v.Filtering, n.filtering, why)
					}
					if s.name == "honest" && v.Type != n.typ {
						t.Errorf("honest server: type %s, want %s%s", v.Type, n.typ, why)
					}
					// With two honest servers beside a liar, mapping is told.
					if honest && v.Mapping == MappingUnknown {
						t.Errorf("mapping unknown with honest servers beside%s", why)
					}
					if s.lie != nil && s.name != "honest" {
						excluded := false
						for _, sv := range v.Servers {
							excluded = excluded || sv.Server == prim && sv.Excluded != ""
						}
						if !excluded {
							t.Errorf("lying primary not excluded: %+v%s", v.Servers, why)
						}
					}
				})
			}
		}
	}
}

// A router with two uplinks, chosen by destination, shows two public IPs
// to two servers: each server is consistent, so that is address-dependent
// mapping, not a lie.
func TestClassifyTwoUplinks(t *testing.T) {
	pubB := ap("198.51.100.99:40000")
	ts := rfc5780(pub, pub, pub, none, none, other)
	ts = append(ts, bind(TestRepeat, prim, pub), bind(TestServer, plainSrv, pubB), bind(TestRepeat, plainSrv, pubB))
	v := Classify(Observations{Tests: ts, RouteSource: local.Addr(), HostAddrs: hostLAN})
	why := "\n  " + strings.Join(v.Evidence, "\n  ")
	if v.Mapping != AddressDependent || v.Type != TypeSymmetric {
		t.Errorf("mapping %s type %s, want address-dependent symmetric%s", v.Mapping, v.Type, why)
	}
	for _, sv := range v.Servers {
		if sv.Excluded != "" {
			t.Errorf("server %s excluded: %s", sv.Server, sv.Excluded)
		}
	}
	if !strings.Contains(why, "servers DISAGREE: 203.0.113.10:3478 saw 198.51.100.7:40000 (confirmed); 192.0.2.20:3478 saw 198.51.100.99:40000 (confirmed)") {
		t.Errorf("no whoami-style disagreement line:%s", why)
	}
}

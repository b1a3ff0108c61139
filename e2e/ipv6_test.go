package e2e

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

// testServer6 starts natcheck's test server on an IPv6 address of the
// lab's internet namespace.
func testServer6(t *testing.T, l *lab.Lab, ip netip.Addr) netip.AddrPort {
	t.Helper()
	c, err := l.ListenUDP6(l.Internet, netip.AddrPortFrom(ip, 3478).String())
	if err != nil {
		t.Fatalf("listen in %s: %v", l.Internet, err)
	}
	return stuntest.Serve(t, c, stuntest.Behaviour{}).Addr
}

func ipv6JSON(t *testing.T, r result) report.IPv6JSON {
	t.Helper()
	return decodeJSON[report.IPv6JSON](t, r)
}

// Routed IPv6 (a global /64 on the LAN) is reported as routed, NAT66 (a ULA
// masqueraded to the router's WAN address) and NPTv6 (a ULA prefix mapped
// to a global one) as translated, each with the address the servers really
// see, whatever the IPv4 NAT in front.
func TestIPv6RoutedOrTranslated(t *testing.T) {
	for _, tc := range []struct {
		kind lab.Kind
		mode lab.IPv6Mode
	}{
		{lab.PortRestrictedCone, lab.IPv6Routed},
		{lab.PortRestrictedCone, lab.IPv6NAT66},
		{lab.NoNAT, lab.IPv6NAT66},
		{lab.Symmetric, lab.IPv6Routed},
		{lab.PortRestrictedCone, lab.IPv6NPT},
	} {
		t.Run(string(tc.kind)+"/"+string(tc.mode), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: tc.kind})
			v6 := l.AddIPv6(tc.mode)
			a := testServer6(t, l, v6.ServerIPs[0])
			b := testServer6(t, l, v6.ServerIPs[1])
			j := ipv6JSON(t, natcheck(t, l, "ipv6", "--json", "-s", a.String(), "-s", b.String()))
			translated := tc.mode != lab.IPv6Routed
			if j.STUN != "works" || j.Translated != tri.Of(translated) {
				t.Fatalf("stun %q path %q translated %v; want works, translated=%v", j.STUN, j.Path, j.Translated, translated)
			}
			if j.PublicIP != v6.PublicIP.String() || j.LocalIP != v6.ClientIP.String() {
				t.Errorf("public %s local %s; want %s %s", j.PublicIP, j.LocalIP, v6.PublicIP, v6.ClientIP)
			}
			list := j.GlobalAddresses
			if translated {
				list = j.ULAAddresses
			}
			if !slices.Contains(list, v6.ClientIP.String()) {
				t.Errorf("the client's %s is missing from global %v / ula %v", v6.ClientIP, j.GlobalAddresses, j.ULAAddresses)
			}
			if translated && (j.PortPreserved == tri.Unknown || j.Path != "translated") {
				t.Errorf("translated path without port judgement: %+v", j)
			}
			// Prefix translation keeps ports (and the interface identifier).
			if tc.mode == lab.IPv6NPT && j.PortPreserved != tri.Yes {
				t.Errorf("NPTv6 changed the port: %+v", j)
			}
			plain := natcheck(t, l, "ipv6", "-s", a.String())
			if plain.code != 0 || plain.stderr != "" {
				t.Errorf("plain run: exit %d stderr %q", plain.code, plain.stderr)
			}
		})
	}
}

// Without IPv6 in the lab, the answer says so and exits 3, quickly.
func TestIPv6Unusable(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	r := natcheck(t, l, "ipv6", "--json", "--timeout", "1s", "-s", "[2001:db8:ff::10]:3478")
	j := ipv6JSON(t, r)
	if r.code != 3 || j.STUN != "no-route" || j.Path != "unknown" || j.Translated != tri.Unknown {
		t.Errorf("exit %d stun %q path %q translated %v; want 3, no-route, unknown, null", r.code, j.STUN, j.Path, j.Translated)
	}
	if r.elapsed > 1500_000_000 {
		t.Errorf("took %v with no IPv6 route", r.elapsed)
	}
}

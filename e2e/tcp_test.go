package e2e

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
)

// coturn answers STUN over TCP on both addresses and advertises its
// OTHER-ADDRESS, so the TCP mapping can be named in full: plain masquerade
// keeps one mapping per internal endpoint, fully random masquerade maps
// every connection anew.
func TestTCPMappingBehaviour(t *testing.T) {
	for _, tc := range []struct {
		kind lab.Kind
		want nat.Mapping
		eim  bool
	}{
		{lab.PortRestrictedCone, "endpoint-independent", true},
		{lab.NoNAT, "endpoint-independent", true},
		{lab.Symmetric, "address-and-port-dependent", false},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: tc.kind})
			coturn(t, l, l.ServerIPs[:])
			r := natcheck(t, l, "tcp", "--json", "-s", netip.AddrPortFrom(l.ServerIPs[0], 3478).String())
			var j report.TCPMappingJSON
			if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != 0 {
				t.Fatalf("exit %d, stdout not JSON (%v): %s", r.code, err, r.stdout)
			}
			if j.Mapping != tc.want || j.EndpointIndependent != tri.Of(tc.eim) {
				t.Fatalf("mapping %q eim %v (%s); want %q", j.Mapping, j.EndpointIndependent, j.Reason, tc.want)
			}
			if len(j.Tests) != 3 || j.Tests[1].To != netip.AddrPortFrom(l.ServerIPs[1], 3478).String() {
				t.Errorf("tests %+v; want primary, alt-ip at %s:3478, alt-ip-port", j.Tests, l.ServerIPs[1])
			}
			if tc.eim && j.Tests[0].MappedAddress != netip.AddrPortFrom(l.PublicIP, netip.MustParseAddrPort(j.LocalAddress).Port()).String() {
				t.Errorf("mapped %s; masquerade keeps the local port of %s at %s", j.Tests[0].MappedAddress, j.LocalAddress, l.PublicIP)
			}
		})
	}
}

// In a udp-blocked lab TCP still passes: STUN over TCP answers there.
func TestTCPWorksWhereUDPIsBlocked(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.UDPBlocked})
	coturn(t, l, l.ServerIPs[:1])
	r := natcheck(t, l, "tcp", "--json", "-s", netip.AddrPortFrom(l.ServerIPs[0], 3478).String())
	var j report.TCPMappingJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != 0 {
		t.Fatalf("exit %d, stdout not JSON (%v): %s", r.code, err, r.stdout)
	}
	if len(j.Servers) != 1 || netip.MustParseAddrPort(j.Servers[0].MappedAddress).Addr() != l.PublicIP {
		t.Errorf("servers %+v; want one TCP answer showing %s", j.Servers, l.PublicIP)
	}
	// One server without OTHER-ADDRESS cannot name the mapping: unknown.
	if j.Mapping != "unknown" || j.EndpointIndependent != tri.Unknown || j.Reason == "" {
		t.Errorf("mapping %q eim %v reason %q", j.Mapping, j.EndpointIndependent, j.Reason)
	}
}

// deadIP is an address in the lab's internet that nothing answers.
var deadIP = netip.MustParseAddr("203.0.113.99")

// A dead first server costs the TCP test a grace period, not --timeout:
// the mapping is named against the live one, and the JSON says where the
// connections really left from.
func TestTCPDeadFirstServer(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	r := natcheck(t, l, "tcp", "--json", "--timeout", "3s", "-s", deadIP.String(), "-s", netip.AddrPortFrom(l.ServerIPs[0], 3478).String())
	var j report.TCPMappingJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || r.code != 0 {
		t.Fatalf("exit %d, stdout not JSON (%v): %s", r.code, err, r.stdout)
	}
	if j.Mapping != "endpoint-independent" {
		t.Fatalf("mapping %q (%v); want endpoint-independent against the live server", j.Mapping, j.Reason)
	}
	if j.Servers[0].Error == "" || netip.MustParseAddrPort(j.LocalAddress).Addr() != l.ClientIP {
		t.Errorf("dead server %+v, local %s; want an error and the client's address %s", j.Servers[0], j.LocalAddress, l.ClientIP)
	}
	if r.elapsed > 2500*time.Millisecond {
		t.Errorf("took %v: the dead server held the test towards --timeout 3s", r.elapsed)
	}
}

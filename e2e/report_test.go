package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
)

func fullJSON(t *testing.T, r result) report.FullJSON {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("natcheck exited %d: %s", r.code, r.stderr)
	}
	return decodeJSON[report.FullJSON](t, r)
}

// serveBoth runs natcheck serve on both IPv4 server addresses and, when
// the lab has IPv6, both IPv6 ones.
func serveBoth(t *testing.T, l *lab.Lab, v6 *lab.IPv6) {
	t.Helper()
	var extra []string
	if v6 != nil {
		extra = []string{"--listen", v6.ServerIPs[0].String(), "--listen", v6.ServerIPs[1].String()}
	}
	natcheckServe(t, l, extra...)
}

func checkStatuses(t *testing.T, f report.FullJSON, want map[string]string) {
	t.Helper()
	for _, c := range f.Checks {
		if w, ok := want[string(c.Name)]; ok && string(c.Status) != w {
			t.Errorf("check %s: %s (%s), want %s", c.Name, c.Status, c.Note, w)
		}
	}
}

// The whole report behind a port-restricted cone with miniupnpd, routed
// IPv6 and a 8 s conntrack UDP timeout; then again without miniupnpd.
func TestReportFullPicture(t *testing.T) {
	const udpTimeout = 8 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, UPnP: true})
	v6 := l.AddIPv6(lab.IPv6Routed)
	l.SetUDPTimeout(udpTimeout, udpTimeout)
	serveBoth(t, l, &v6)
	servers := []string{"-s", l.ServerIPs[0].String(), "-s", netip.AddrPortFrom(v6.ServerIPs[0], 3478).String()}

	const timeout = 4 * time.Second
	r := natcheck(t, l, append([]string{"report", "--json", "--timeout", timeout.String(),
		"--lifetime", "--lifetime-max", "20s"}, servers...)...)
	f := fullJSON(t, r)
	if f.Type != "port-restricted-cone" || f.PublicIP != l.PublicIP.String() {
		t.Errorf("type %s public %s; want port-restricted-cone %s", f.Type, f.PublicIP, l.PublicIP)
	}
	pm := f.PortMapping
	if pm == nil {
		t.Fatal("no port_mapping section")
	}
	for name, p := range map[string]*report.PortmapProtocolJSON{"upnp": pm.UPnP, "nat_pmp": pm.NATPMP, "pcp": pm.PCP} {
		if p == nil || p.Supported != tri.Yes || p.MappingDeleted != tri.Yes {
			t.Errorf("%s: %+v; want supported, mapping deleted", name, p)
		}
	}
	if pm.DoubleNAT.Detected != tri.No {
		t.Errorf("double NAT %+v on a single NAT", pm.DoubleNAT)
	}
	if f.IPv6 == nil || f.IPv6.Path != "routed" || f.IPv6.STUN != "works" {
		t.Errorf("ipv6 %+v; want works, routed", f.IPv6)
	}
	if f.Lifetime == nil || f.Lifetime.EstimateMs == nil {
		t.Fatalf("binding lifetime %+v; want measured", f.Lifetime)
	}
	est := time.Duration(*f.Lifetime.EstimateMs * float64(time.Millisecond))
	t.Logf("lifetime measured %v, configured %v; report took %v", est, udpTimeout, r.elapsed)
	if !within(est, udpTimeout, 0.2) {
		t.Errorf("lifetime %v, configured %v: more than 20%% off", est, udpTimeout)
	}
	checkStatuses(t, f, map[string]string{"nat-type": "done", "port-mapping": "done", "ipv6": "done",
		"tcp": "done", "binding-lifetime": "done", "servers": "done", "local": "done"})
	// "advertised" is the honest downgrade when the verify test's reply did
	// not come back in time (a loaded CI machine); never absent or invalid.
	if len(f.ServerChecks) != 2 || !slices.Contains([]nat.RFC5780{"verified", "advertised"}, f.ServerChecks[0].RFC5780) {
		t.Errorf("server checks %+v; want the IPv4 server verified", f.ServerChecks)
	}
	if f.Local.Gateway != l.Gateway.String() || f.Local.InternetIface == "" {
		t.Errorf("local %+v; want gateway %s and the internet interface", f.Local, l.Gateway)
	}
	if limit := timeout + 20*time.Second + 6*time.Second; r.elapsed > limit {
		t.Errorf("took %v; bound %v", r.elapsed, limit)
	}

	// Without miniupnpd every protocol is refused at once, and the report
	// (no lifetime) ends within its timeout.
	l.MiniUPnPd().Stop(t)
	r = natcheck(t, l, append([]string{"report", "--json", "--timeout", timeout.String()}, servers...)...)
	f = fullJSON(t, r)
	for name, p := range map[string]*report.PortmapProtocolJSON{"upnp": f.PortMapping.UPnP, "nat_pmp": f.PortMapping.NATPMP, "pcp": f.PortMapping.PCP} {
		if p == nil || p.Supported != tri.No {
			t.Errorf("without miniupnpd, %s: %+v; want not supported", name, p)
		}
	}
	checkStatuses(t, f, map[string]string{"binding-lifetime": "skipped", "port-mapping": "done"})
	if r.elapsed > timeout+time.Second {
		t.Errorf("report took %v with --timeout %v", r.elapsed, timeout)
	}

	// The Markdown form carries the same verdict, ready for a ticket.
	md := natcheck(t, l, append([]string{"report", "--format", "markdown", "--timeout", timeout.String()}, servers...)...)
	for _, want := range []string{"# natcheck report", "**port-restricted-cone (mapping endpoint-independent", "| Port mapping (UPnP, NAT-PMP, PCP) | port mapping: UPnP no, NAT-PMP no, PCP no", "| IPv6 | IPv6: works, routed"} {
		if !strings.Contains(md.stdout, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.stdout)
		}
	}
}

// Behind a carrier NAT, the home gateway's own external address (PCP
// reports 100.64.0.2) differs from the STUN-mapped one: double NAT, and the
// TTL probe finds the carrier hop.
func TestReportDoubleNAT(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.DoubleNAT, UPnP: true})
	serveBoth(t, l, nil)
	f := fullJSON(t, natcheck(t, l, "report", "--json", "-s", l.ServerIPs[0].String()))
	if f.PortMapping == nil || f.PortMapping.DoubleNAT.Detected != tri.Yes ||
		f.PortMapping.DoubleNAT.GatewayExternalIP != l.RouterWAN.String() {
		t.Errorf("double NAT %+v; want detected via gateway address %s", f.PortMapping, l.RouterWAN)
	}
	if f.CGNAT != tri.Yes {
		t.Errorf("cgnat %v; want true", f.CGNAT)
	}
}

// A symmetric NAT with NAT66 and no port-mapping service.
func TestReportSymmetricNAT66(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.Symmetric})
	v6 := l.AddIPv6(lab.IPv6NAT66)
	serveBoth(t, l, &v6)
	f := fullJSON(t, natcheck(t, l, "report", "--json", "-s", l.ServerIPs[0].String(),
		"-s", netip.AddrPortFrom(v6.ServerIPs[0], 3478).String()))
	if f.Type != "symmetric" {
		t.Errorf("type %s, want symmetric", f.Type)
	}
	if f.IPv6 == nil || f.IPv6.Path != "translated" {
		t.Errorf("ipv6 %+v; want translated", f.IPv6)
	}
	if f.TCP == nil || f.TCP.Mapping != "address-and-port-dependent" {
		t.Errorf("tcp %+v; want address-and-port-dependent", f.TCP)
	}
	if f.PortMapping == nil || f.PortMapping.UPnP == nil || f.PortMapping.UPnP.Supported != tri.No {
		t.Errorf("port mapping %+v; want UPnP not supported", f.PortMapping)
	}
}

// A dead server beside a live one: the servers and TCP checks give it a
// grace period, so the report ends long before --timeout, and its RFC 5780
// support is unknown rather than absent.
func TestReportDeadServerCostsAGrace(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	const timeout = 5 * time.Second
	r := natcheck(t, l, "report", "--json", "--timeout", timeout.String(), "--no-portmap",
		"-s", deadIP.String(), "-s", l.ServerIPs[0].String())
	f := fullJSON(t, r)
	checkStatuses(t, f, map[string]string{"servers": "done", "tcp": "done", "nat-type": "done"})
	if len(f.ServerChecks) != 2 || f.ServerChecks[0].RFC5780 != "unknown" || !slices.Contains([]nat.RFC5780{"verified", "advertised"}, f.ServerChecks[1].RFC5780) {
		t.Errorf("server checks %+v; want the dead one unknown, coturn verified", f.ServerChecks)
	}
	if f.TCP == nil || f.TCP.Mapping != "endpoint-independent" {
		t.Errorf("tcp %+v; want endpoint-independent against the live server", f.TCP)
	}
	if r.elapsed > 3*time.Second {
		t.Errorf("report took %v with --timeout %v: the dead server was waited for", r.elapsed, timeout)
	}
}

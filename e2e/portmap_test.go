package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

func portmapJSON(t *testing.T, r result) report.PortmapJSON {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("natcheck exited %d: %s", r.code, r.stderr)
	}
	return decodeJSON[report.PortmapJSON](t, r)
}

// dnatRule is miniupnpd's DNAT rule, one per mapping; every rule it adds
// (DNAT and the matching forward accept) matches upnpRule.
var (
	dnatRule = regexp.MustCompile(`dnat ip to 192\.168\.1\.2:\d+`)
	upnpRule = regexp.MustCompile(`(?m)^\s*iif "wan0".*$`)
)

// mappings are the DNAT rules of miniupnpd's mappings.
func mappings(t *testing.T, m *lab.MiniUPnPd) []string {
	t.Helper()
	return dnatRule.FindAllString(m.Ruleset(t), -1)
}

// leftovers are all rules miniupnpd has added: DNAT and forward accepts.
func leftovers(t *testing.T, m *lab.MiniUPnPd) []string {
	t.Helper()
	return upnpRule.FindAllString(m.Ruleset(t), -1)
}

// With miniupnpd on the router, all three protocols are found, report the
// router's public address, and their test mappings are gone afterwards;
// stopped, each says "not supported" at once.
func TestPortmapWithMiniUPnPd(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, UPnP: true})
	m := l.MiniUPnPd()
	srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})

	p := portmapJSON(t, natcheck(t, l, "portmap", "--json", "-s", srv.String()))
	for name, pr := range map[string]*report.PortmapProtocolJSON{"upnp": p.UPnP, "nat_pmp": p.NATPMP, "pcp": p.PCP} {
		if pr == nil {
			t.Errorf("%s: not in the report", name)
			continue
		}
		if pr.Supported != tri.Yes || pr.ExternalIP != l.PublicIP.String() ||
			pr.MappingAdded != tri.Yes || pr.MappingDeleted != tri.Yes || pr.Error != "" {
			t.Errorf("%s: %+v; want supported, external %s, mapping added and deleted, no error", name, *pr, l.PublicIP)
		}
	}
	if p.Gateway != l.Gateway.String() || p.ExternalIP != l.PublicIP.String() {
		t.Errorf("gateway %s external %s; want %s and %s", p.Gateway, p.ExternalIP, l.Gateway, l.PublicIP)
	}
	if p.DoubleNAT.Detected != tri.No || p.DoubleNAT.STUNMappedIP != l.PublicIP.String() {
		t.Errorf("double NAT %+v; want detected false with the STUN-mapped %s", p.DoubleNAT, l.PublicIP)
	}
	if left := leftovers(t, m); len(left) != 0 {
		t.Errorf("rules left on the router after the run: %v\n%s", left, m.Ruleset(t))
	}

	m.Stop(t)
	r := natcheck(t, l, "portmap", "--json", "--no-stun")
	p = portmapJSON(t, r)
	for name, pr := range map[string]*report.PortmapProtocolJSON{"upnp": p.UPnP, "nat_pmp": p.NATPMP, "pcp": p.PCP} {
		if pr.Supported != tri.No || pr.MappingAdded != tri.Unknown {
			t.Errorf("without miniupnpd, %s: %+v; want supported false, nothing mapped", name, *pr)
		}
	}
	// The router refuses (ICMP port unreachable): no protocol waits. The
	// bound is on the check itself; the process (a -race build under a
	// loaded CI) may take longer to start.
	if p.ElapsedMs > 500 {
		t.Errorf("without miniupnpd the check took %.0f ms (process %v); want well under 2 s", p.ElapsedMs, r.elapsed)
	}
}

// Ctrl-C while the test mappings exist still deletes them all.
func TestPortmapInterruptDeletesMappings(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, UPnP: true})
	m := l.MiniUPnPd()
	bin := lab.BuildNatcheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, l.Client, bin, "portmap", "--no-stun", "--hold", "20s")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until all three mappings are on the router: a DNAT and a
	// forward accept each.
	deadline := time.Now().Add(10 * time.Second)
	for len(mappings(t, m)) < 3 || len(leftovers(t, m)) < 6 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the three test mappings never appeared:\n%s\nstderr: %s", m.Ruleset(t), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ip netns exec execs natcheck in its own process: this is Ctrl-C.
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 130 || out.Len() != 0 || !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("exit %d stdout %q stderr %q; want 130, nothing, interrupted", code, out.String(), errOut.String())
	}
	if left := leftovers(t, m); len(left) != 0 {
		t.Errorf("rules left on the router after Ctrl-C: %v", left)
	}
	if took > 2*time.Second {
		t.Errorf("exit took %v after Ctrl-C", took)
	}
}

// Behind a carrier NAT, the home router's miniupnpd reports its shared
// WAN address 100.64.0.2 (PCP), while STUN sees 203.0.113.2: double NAT.
func TestPortmapDoubleNAT(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.DoubleNAT, UPnP: true})
	srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
	p := portmapJSON(t, natcheck(t, l, "portmap", "--json", "-s", srv.String()))
	if p.DoubleNAT.Detected != tri.Yes || p.DoubleNAT.GatewayExternalIP != l.RouterWAN.String() ||
		p.DoubleNAT.STUNMappedIP != l.PublicIP.String() {
		t.Errorf("double NAT %+v; want detected with gateway %s and STUN %s", p.DoubleNAT, l.RouterWAN, l.PublicIP)
	}
	for name, pr := range map[string]*report.PortmapProtocolJSON{"upnp": p.UPnP, "nat_pmp": p.NATPMP, "pcp": p.PCP} {
		if pr.Supported != tri.Yes {
			t.Errorf("%s: supported %v, want true", name, pr.Supported)
		}
	}
	if left := leftovers(t, l.MiniUPnPd()); len(left) != 0 {
		t.Errorf("mappings left: %v", left)
	}
}

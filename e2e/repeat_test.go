package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

// typeJSON decodes `natcheck type --json`.
func typeJSON(t *testing.T, r result) report.TypeJSON {
	t.Helper()
	var j report.TypeJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("exit %d, stdout not JSON (%v): %s", r.code, err, r.stdout)
	}
	return j
}

// --runs repeats the type test and reports the agreement; --bind puts
// every socket on the given address and the mapping socket on the given
// port, which the NAT keeps (masquerade preserves ports when it can).
func TestTypeRunsAndBind(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	server := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	bind := netip.AddrPortFrom(l.ClientIP, 40400)
	r := natcheck(t, l, "type", "--json", "--runs", "3", "--bind", bind.String(), "-s", server)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	j := typeJSON(t, r)
	if j.Type != "port-restricted-cone" {
		t.Errorf("type %q, want port-restricted-cone", j.Type)
	}
	if j.Agreement == nil || j.Agreement.Runs != 3 || j.Agreement.Agreeing != 3 || !j.Agreement.Majority || len(j.Runs) != 3 {
		t.Fatalf("agreement %+v, %d runs; want 3 of 3", j.Agreement, len(j.Runs))
	}
	if j.LocalPort != int(bind.Port()) || j.LocalIP != l.ClientIP.String() {
		t.Errorf("local %s:%d, want %s", j.LocalIP, j.LocalPort, bind)
	}
	if len(j.LocalSockets) == 0 {
		t.Fatal("no local_sockets reported")
	}
	for _, s := range j.LocalSockets {
		if a := netip.MustParseAddrPort(s.Local); a.Addr() != l.ClientIP {
			t.Errorf("%s socket on %s, want every socket on %s", s.Use, a, l.ClientIP)
		}
	}
	// The plain first line carries the agreement.
	r = natcheck(t, l, "type", "--runs", "2", "-s", server)
	if first := strings.SplitN(r.stdout, "\n", 2)[0]; r.code != 0 || !strings.Contains(first, "2 of 2 runs") {
		t.Errorf("first line %q (exit %d), want the verdict with \"2 of 2 runs\"", first, r.code)
	}
	// An address this host does not have is a usage error.
	if r := natcheck(t, l, "type", "--bind", "192.0.2.77", "-s", server); r.code != 2 {
		t.Errorf("--bind 192.0.2.77: exit %d, want 2", r.code)
	}
}

// withResolver points the client namespace's resolver at addr for the
// test: `ip netns exec` mounts /etc/netns/NS/resolv.conf over the host's.
func withResolver(t *testing.T, l *lab.Lab, addr netip.Addr) {
	t.Helper()
	dir := filepath.Join("/etc/netns", l.Client)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := "nameserver " + addr.String() + "\noptions timeout:5 attempts:1\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A server name whose lookup hangs never blocks the answer: the literal
// servers beside it carry the test, and names alone fail with the cause.
func TestHangingDNSNeverBlocksTheAnswer(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	withResolver(t, l, deadIP) // routed, but nothing answers there
	lit0 := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	lit1 := netip.AddrPortFrom(l.ServerIPs[1], 3478).String()

	r := natcheck(t, l, "type", "--json", "-s", "stun.hangs.test", "-s", lit0, "-s", lit1)
	if r.code != 0 {
		t.Fatalf("type with a hanging name beside literals: exit %d: %s", r.code, r.stderr)
	}
	if j := typeJSON(t, r); j.Type != "port-restricted-cone" {
		t.Errorf("type %q, want port-restricted-cone", j.Type)
	}
	// The default --timeout is 3 s; the literals answer in milliseconds.
	if r.elapsed > 2500*time.Millisecond {
		t.Errorf("type took %v: the hanging lookup held it", r.elapsed)
	}

	r = natcheck(t, l, "whoami", "-s", "stun1.hangs.test", "-s", "stun2.hangs.test")
	if r.code != 3 || r.stdout != "" || !strings.Contains(r.stderr, "DNS could not resolve any server name") ||
		!strings.Contains(r.stderr, "offline") {
		t.Errorf("whoami with hanging names only: exit %d, stdout %q, stderr %q; want exit 3 and the DNS cause", r.code, r.stdout, r.stderr)
	}
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("stderr is not one line: %q", r.stderr)
	}
}

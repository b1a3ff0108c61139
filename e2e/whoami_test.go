package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

// result is one run of the natcheck binary.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// natcheck runs the binary inside the lab's client namespace.
func natcheck(t *testing.T, l *lab.Lab, args ...string) result {
	t.Helper()
	bin := lab.BuildNatcheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, l.Client, bin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run natcheck: %v", err)
	}
	t.Logf("natcheck %s -> exit %d in %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// testServer starts natcheck's scriptable test server inside the lab's
// internet namespace on ip:port.
func testServer(t *testing.T, l *lab.Lab, ip netip.Addr, port int, b stuntest.Behaviour) netip.AddrPort {
	t.Helper()
	c, err := l.ListenUDP(l.Internet, netip.AddrPortFrom(ip, uint16(port)).String())
	if err != nil {
		t.Fatalf("listen in %s: %v", l.Internet, err)
	}
	return stuntest.Serve(t, c, b).Addr
}

// coturn starts Debian's coturn as a plain STUN server (no TURN, no auth)
// inside the internet namespace.
func coturn(t *testing.T, l *lab.Lab, ips []netip.Addr, extra ...string) {
	t.Helper()
	if _, err := exec.LookPath("turnserver"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("turnserver (coturn) not installed")
		}
		t.Skip("turnserver (coturn) not installed")
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", empty, "-S", "-n", "--no-cli", "--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--listening-port", "3478"}
	for _, ip := range ips {
		args = append(args, "-L", ip.String())
	}
	l.Start(t, l.Internet, "turnserver", append(args, extra...)...)
	waitUDP(t, l, netip.AddrPortFrom(ips[0], 3478))
}

// waitUDP waits until a STUN server answers on addr, probing from the
// internet namespace itself.
func waitUDP(t *testing.T, l *lab.Lab, addr netip.AddrPort) {
	t.Helper()
	bin := lab.BuildNatcheck(t)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := l.Command(ctx, l.Internet, bin, "whoami", "--timeout", "300ms", "-s", addr.String()).Run()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no STUN server came up on %s", addr)
}

func whoamiJSON(t *testing.T, r result) report.WhoAmIJSON {
	t.Helper()
	return decodeJSON[report.WhoAmIJSON](t, r)
}

// decodeJSON parses a run's stdout as one JSON document of type T.
func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

func TestWhoAmIBehindNAT(t *testing.T) {
	for _, kind := range []lab.Kind{lab.PortRestrictedCone, lab.Symmetric, lab.DoubleNAT, lab.FullCone} {
		t.Run(string(kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: kind})
			own := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
			coturn(t, l, []netip.Addr{l.ServerIPs[1]})
			third := netip.AddrPortFrom(l.ServerIPs[1], 3478)

			plain := natcheck(t, l, "whoami", "-s", own.String(), "-s", third.String())
			if plain.code != 0 || plain.stdout != l.PublicIP.String()+"\n" || plain.stderr != "" {
				t.Fatalf("plain whoami: exit %d, stdout %q, stderr %q; want the router's public IP %s alone",
					plain.code, plain.stdout, plain.stderr, l.PublicIP)
			}
			// Each server alone: natcheck's test server and coturn must both
			// see the router's address. (Asked together, whichever is slower
			// may be skipped once the first has answered.)
			for _, srv := range []netip.AddrPort{own, third} {
				w := whoamiJSON(t, natcheck(t, l, "whoami", "--json", "-s", srv.String()))
				if w.PublicIP != l.PublicIP.String() || !w.NAT || w.LocalIP != l.ClientIP.String() {
					t.Errorf("json via %s: public %s nat %v local %s; want %s true %s", srv, w.PublicIP, w.NAT, w.LocalIP, l.PublicIP, l.ClientIP)
				}
			}
			w := whoamiJSON(t, natcheck(t, l, "whoami", "--json", "-s", own.String(), "-s", third.String()))
			if w.AgreeingServers < 1 || w.DisagreeingServers != 0 {
				t.Errorf("servers disagree: %d/%d", w.AgreeingServers, w.DisagreeingServers)
			}
		})
	}
}

func TestWhoAmIPublicHostIsNotNAT(t *testing.T) {
	for _, kind := range []lab.Kind{lab.NoNAT, lab.Firewall} {
		t.Run(string(kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: kind})
			srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
			w := whoamiJSON(t, natcheck(t, l, "whoami", "--json", "-s", srv.String()))
			if w.NAT || w.PublicIP != l.ClientIP.String() || w.PublicPort != w.LocalPort {
				t.Errorf("public host: nat %v public %s:%d local %s:%d; want nat false and the client's own address",
					w.NAT, w.PublicIP, w.PublicPort, w.LocalIP, w.LocalPort)
			}
		})
	}
}

func TestWhoAmIUDPBlockedFailsClearlyWithinTimeout(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.UDPBlocked})
	srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
	r := natcheck(t, l, "whoami", "--timeout", "1s", "-s", srv.String())
	if r.code != 3 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q; want exit 3 and nothing on stdout", r.code, r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no STUN server answered") {
		t.Errorf("want one clear line on stderr, got %q", r.stderr)
	}
	// The timeout bounds the run; process start-up adds a little.
	if r.elapsed > 1500*time.Millisecond {
		t.Errorf("took %v with --timeout 1s", r.elapsed)
	}
}

// A dead server beside a live one must cost no timeout: the answer comes a
// short grace period after the live reply, far below the 3 s timeout.
func TestWhoAmIDeadServerCostsNothing(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, DelayMs: 10})
	live := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
	dead := testServer(t, l, l.ServerIPs[1], 3478, stuntest.Behaviour{Drop: func(int) bool { return true }})
	w := whoamiJSON(t, natcheck(t, l, "whoami", "--json", "-s", dead.String(), "-s", live.String()))
	if w.PublicIP != l.PublicIP.String() {
		t.Fatalf("public %s, want %s", w.PublicIP, l.PublicIP)
	}
	if w.ElapsedMs > 1000 {
		t.Errorf("answer took %.0f ms beside a dead server; the round trip is about 20 ms", w.ElapsedMs)
	}
	if st := w.Servers[0].Status; st != "skipped" {
		t.Errorf("dead server status %q, want skipped", st)
	}
}

// Retransmission carries whoami through heavy loss on the WAN.
func TestWhoAmIUnderLoss(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, LossPercent: 30})
	srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
	ok := 0
	const runs = 10
	for range runs {
		r := natcheck(t, l, "whoami", "--timeout", "5s", "-s", srv.String())
		if r.code == 0 && r.stdout == l.PublicIP.String()+"\n" {
			ok++
		}
	}
	// With 30% loss each way a transmission is answered with probability
	// 0.7*0.7 = 0.49. Within 5 s whoami transmits at 0, 0.25, 0.75, 1.75 and
	// 3.75 s, so a run fails with probability 0.51^5 = 3.5%, and three or
	// more of ten runs fail with probability about 0.4%. Without
	// retransmission half the runs would fail.
	if ok < 8 {
		t.Errorf("only %d of %d runs answered at 30%% loss", ok, runs)
	}
}

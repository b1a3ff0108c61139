package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// natcheckServe starts `natcheck serve` on both of the lab's server
// addresses, inside the internet namespace, and waits until it answers.
func natcheckServe(t *testing.T, l *lab.Lab, extra ...string) *exec.Cmd {
	t.Helper()
	// Plain, not race-built: the lab tests measure timing-sensitive
	// behaviour (CHANGE-REQUEST answers within a client's silence window)
	// while many labs run at once; the server's code runs under -race in
	// ./server's own tests.
	bin := lab.BuildNatcheckPlain(t)
	args := append([]string{"serve", "--listen", l.ServerIPs[0].String(), "--listen", l.ServerIPs[1].String()}, extra...)
	cmd := l.Start(t, l.Internet, bin, args...)
	waitUDP(t, l, netip.AddrPortFrom(l.ServerIPs[0], 3478))
	return cmd
}

// natdiscovery runs coturn's RFC 5780 client in the lab's client namespace
// against addr and returns the verdict lines it printed.
func natdiscovery(t *testing.T, l *lab.Lab, server netip.Addr, args ...string) (mapping, filtering string) {
	t.Helper()
	if _, err := exec.LookPath("turnutils_natdiscovery"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("turnutils_natdiscovery (coturn) not installed")
		}
		t.Skip("turnutils_natdiscovery (coturn) not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Command(ctx, l.Client, "turnutils_natdiscovery", append(args, server.String())...).CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_natdiscovery: %v\n%s", err, out)
	}
	t.Logf("turnutils_natdiscovery %s took %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasSuffix(line, "Mapping!") || strings.HasPrefix(line, "No NAT!"):
			mapping = line
		case strings.HasSuffix(line, "Filtering!"):
			filtering = line
		}
	}
	if mapping == "" && filtering == "" {
		t.Fatalf("no verdict in natdiscovery output:\n%s", out)
	}
	return mapping, filtering
}

// TestServeNATDiscovery points coturn's turnutils_natdiscovery (a client
// nobody on this project wrote) at natcheck serve in each NAT topology and
// checks it reports the topology's RFC 4787 mapping and filtering.
func TestServeNATDiscovery(t *testing.T) {
	const (
		eim  = "NAT with Endpoint Independent Mapping!"
		apdm = "NAT with Address and Port Dependent Mapping!"
		eif  = "NAT with Endpoint Independent Filtering!"
		adf  = "NAT with Address Dependent Filtering!"
		apdf = "NAT with Address and Port Dependent Filtering!"
	)
	for _, tc := range []struct {
		kind               lab.Kind
		mapping, filtering string
	}{
		{lab.FullCone, eim, eif},
		{lab.RestrictedCone, eim, adf},
		{lab.PortRestrictedCone, eim, apdf},
		{lab.Symmetric, apdm, apdf},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: tc.kind})
			natcheckServe(t, l)
			// Mapping and filtering in separate runs, each from a fresh
			// socket, so that the mapping test's traffic does not open the
			// filter the second test measures.
			mapping, _ := natdiscovery(t, l, l.ServerIPs[0], "-m")
			_, filtering := natdiscovery(t, l, l.ServerIPs[0], "-f")
			if mapping != tc.mapping || filtering != tc.filtering {
				t.Errorf("natdiscovery says %q / %q, want %q / %q", mapping, filtering, tc.mapping, tc.filtering)
			}
		})
	}
}

// TestServeNATDiscoveryCombined runs the documented `-m -f` form once.
func TestServeNATDiscoveryCombined(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	natcheckServe(t, l)
	mapping, filtering := natdiscovery(t, l, l.ServerIPs[0], "-m", "-f")
	if mapping != "NAT with Endpoint Independent Mapping!" || filtering != "NAT with Address and Port Dependent Filtering!" {
		t.Errorf("natdiscovery -m -f says %q / %q", mapping, filtering)
	}
}

// TestServeSIGTERM checks the served binary stops cleanly with exit 0.
func TestServeSIGTERM(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.NoNAT})
	cmd := natcheckServe(t, l, "--metrics", l.ServerIPs[0].String()+":9478")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("natcheck serve after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("natcheck serve did not stop within 10s of SIGTERM")
	}
}

// TestServeRFC3489Client runs the classic `stun` client (stun-client
// package, RFC 3489: no magic cookie, CHANGED-ADDRESS) against natcheck
// serve: old clients get a useful answer too. Its exit status encodes the
// verdict, so only the printed verdict is checked.
func TestServeRFC3489Client(t *testing.T) {
	if _, err := exec.LookPath("stun"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("stun (stun-client) not installed")
		}
		t.Skip("stun (stun-client) not installed")
	}
	for _, tc := range []struct {
		kind lab.Kind
		want string
	}{
		{lab.NoNAT, "Primary: Open"},
		{lab.FullCone, "Primary: Independent Mapping, Independent Filter,"},
		{lab.RestrictedCone, "Primary: Independent Mapping, Address Dependent Filter,"},
		{lab.PortRestrictedCone, "Primary: Independent Mapping, Port Dependent Filter,"},
		{lab.Symmetric, "Primary: Dependent Mapping,"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: tc.kind})
			natcheckServe(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, _ := l.Command(ctx, l.Client, "stun", l.ServerIPs[0].String()).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("stun says:\n%s\nwant a line starting %q", out, tc.want)
			}
		})
	}
}

// TestServeIPv6 serves RFC 5780 on two IPv6 addresses (added to the lab's
// internet namespace, the only place they exist) and runs
// turnutils_natdiscovery against them from the same namespace: no NAT, so
// endpoint-independent everything, which needs every change of address
// and port to be honoured over IPv6.
func TestServeIPv6(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.NoNAT})
	a1, a2 := netip.MustParseAddr("2001:db8:5::10"), netip.MustParseAddr("2001:db8:5::11")
	client := netip.MustParseAddr("2001:db8:5::2")
	for _, a := range []netip.Addr{a1, a2, client} {
		if out, err := exec.Command("ip", "-n", l.Internet, "addr", "add", a.String()+"/128", "dev", "lo", "nodad").CombinedOutput(); err != nil {
			t.Fatalf("add %s in %s: %v: %s", a, l.Internet, err, out)
		}
	}
	bin := lab.BuildNatcheck(t)
	l.Start(t, l.Internet, bin, "serve", "--listen", a1.String(), "--listen", a2.String())
	up := false
	for deadline := time.Now().Add(10 * time.Second); !up && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		up = l.Command(ctx, l.Internet, bin, "whoami", "-6", "--timeout", "300ms", "-s", netip.AddrPortFrom(a1, 3478).String()).Run() == nil
		cancel()
	}
	if !up {
		t.Fatal("natcheck serve did not answer over IPv6")
	}
	inInternet := *l
	inInternet.Client = l.Internet
	// The client binds its own address: unbound, the kernel would pick
	// the server address it talks to as source, a different one per test.
	mapping, filtering := natdiscovery(t, &inInternet, a1, "-m", "-f", "-L", client.String())
	if mapping != "No NAT! (Endpoint Independent Mapping)" || filtering != "NAT with Endpoint Independent Filtering!" {
		t.Errorf("natdiscovery over IPv6 says %q / %q", mapping, filtering)
	}
}

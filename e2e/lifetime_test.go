package e2e

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

func lifetimeJSON(t *testing.T, r result) report.LifetimeJSON {
	t.Helper()
	return decodeJSON[report.LifetimeJSON](t, r)
}

// within reports whether got is within frac of want.
func within(got, want time.Duration, frac float64) bool {
	d := float64(got - want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

// The router forgets an idle UDP mapping after its conntrack timeout; the
// measured lifetime must come within 20% of it, and the run must end soon
// after the lifetime instead of running to --max.
func TestLifetimeMatchesConntrackTimeout(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	const timeout = 10 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	l.SetUDPTimeout(timeout, timeout)
	// coturn honours RESPONSE-PORT only with RFC 5780 on: two addresses.
	coturn(t, l, l.ServerIPs[:])
	srv := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()

	r := natcheck(t, l, "lifetime", "--json", "--min", "2s", "--max", "25s", "--sockets", "24", "-s", srv)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := lifetimeJSON(t, r)
	if got.Result != "measured" || got.EstimateMs == nil || got.LowerMs == nil || got.UpperMs == nil {
		t.Fatalf("result %q, bounds %v-%v; want measured", got.Result, got.LowerMs, got.UpperMs)
	}
	est := time.Duration(*got.EstimateMs * float64(time.Millisecond))
	lower := time.Duration(*got.LowerMs * float64(time.Millisecond))
	upper := time.Duration(*got.UpperMs * float64(time.Millisecond))
	t.Logf("configured %v, measured [%v, %v] ~ %v in %v", timeout, lower, upper, est, r.elapsed)
	if !within(est, timeout, 0.2) || lower > timeout || upper < timeout {
		t.Errorf("measured %v [%v, %v]; configured %v", est, lower, upper, timeout)
	}
	if got.Servers[0].ResponsePort != "supported" || got.Method != "rfc5780-response-port" {
		t.Errorf("server check %+v, method %q", got.Servers[0], got.Method)
	}
	if r.elapsed > 2*timeout {
		t.Errorf("took %v for a %v lifetime with --max 25s", r.elapsed, timeout)
	}
}

// natcheck serve honours RESPONSE-PORT with its default per-source rate
// limit on: the burst of mappings a round opens must stay within it.
func TestLifetimeWithNatcheckServe(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	const timeout = 6 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.Symmetric})
	l.SetUDPTimeout(timeout, timeout)
	natcheckServe(t, l)
	srv := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	r := natcheck(t, l, "lifetime", "--json", "--min", "1s", "--max", "20s", "-s", srv)
	got := lifetimeJSON(t, r)
	if r.code != 0 || got.EstimateMs == nil {
		t.Fatalf("exit %d result %s (%s)", r.code, got.Result, got.Reason)
	}
	est := time.Duration(*got.EstimateMs * float64(time.Millisecond))
	t.Logf("configured %v, measured %v with natcheck serve in %v", timeout, est, r.elapsed)
	if !within(est, timeout, 0.2) || got.Contradictions != 0 {
		t.Errorf("measured %v (%d contradictions), configured %v", est, got.Contradictions, timeout)
	}
	for _, p := range got.Probes {
		if p.State == "failed" {
			t.Errorf("probe %+v failed: the server dropped requests", p)
		}
	}
}

// Linux keeps a UDP flow that exchanged for over 2 s for the stream
// timeout: --established measures that one, the default the single-exchange
// one.
func TestLifetimeEstablishedFlowUsesStreamTimeout(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	const unreplied, stream = 3 * time.Second, 7 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	l.SetUDPTimeout(unreplied, stream)
	natcheckServe(t, l, "--rate-limit", "0")
	srv := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	for _, extra := range [][]string{nil, {"--established"}} {
		r := natcheck(t, l, append([]string{"lifetime", "--json", "--min", "1s", "--max", "15s", "--sockets", "24", "-s", srv}, extra...)...)
		got := lifetimeJSON(t, r)
		want := unreplied
		if got.Established {
			want = stream
		}
		if r.code != 0 || got.EstimateMs == nil {
			t.Fatalf("exit %d result %s (%s)", r.code, got.Result, got.Reason)
		}
		est := time.Duration(*got.EstimateMs * float64(time.Millisecond))
		t.Logf("established=%v: configured %v, measured %v", got.Established, want, est)
		if !within(est, want, 0.2) {
			t.Errorf("established=%v: measured %v, configured %v", got.Established, est, want)
		}
	}
}

// Without RESPONSE-PORT, a NAT that picks random ports still shows expiry:
// the idle socket's next request comes out on a new port.
func TestLifetimeByPortChangeBehindSymmetricNAT(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	const timeout = 5 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.Symmetric})
	l.SetUDPTimeout(timeout, timeout)
	srv := testServer(t, l, l.ServerIPs[0], 3478, stuntest.Behaviour{})
	r := natcheck(t, l, "lifetime", "--json", "--min", "1s", "--max", "15s", "--sockets", "24", "-s", srv.String())
	got := lifetimeJSON(t, r)
	if r.code != 0 || got.Method != "mapped-port-change" || got.EstimateMs == nil {
		t.Fatalf("exit %d method %s result %s (%s)", r.code, got.Method, got.Result, got.Reason)
	}
	est := time.Duration(*got.EstimateMs * float64(time.Millisecond))
	t.Logf("configured %v, measured %v by port change in %v", timeout, est, r.elapsed)
	if !within(est, timeout, 0.2) {
		t.Errorf("measured %v, configured %v", est, timeout)
	}
}

// A server that does not honour RESPONSE-PORT (coturn with one address has
// RFC 5780 off) behind a NAT that keeps ports makes the lifetime unknown,
// said plainly, exit 0.
func TestLifetimeUnknownWithoutResponsePort(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:1])
	r := natcheck(t, l, "lifetime", "--max", "5s", "-s", netip.AddrPortFrom(l.ServerIPs[0], 3478).String())
	if r.code != 0 || r.stdout == "" || r.elapsed > 5*time.Second {
		t.Fatalf("exit %d in %v, stdout %q", r.code, r.elapsed, r.stdout)
	}
	if want := "UDP mapping lifetime: unknown ("; r.stdout[:len(want)] != want {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
}

// A longer, closer look at real defaults, for measurements by hand:
// NATCHECK_LAB_LONG=1 go test ./e2e -run TestLifetimeDefaultTimeout -v
func TestLifetimeDefaultTimeout(t *testing.T) {
	if os.Getenv("NATCHECK_LAB_LONG") == "" {
		t.Skip("set NATCHECK_LAB_LONG=1 to measure the kernel's default 30 s timeout")
	}
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	r := natcheck(t, l, "lifetime", "--json", "--max", "2m", "-s", netip.AddrPortFrom(l.ServerIPs[0], 3478).String())
	got := lifetimeJSON(t, r)
	if got.EstimateMs == nil || !within(time.Duration(*got.EstimateMs*float64(time.Millisecond)), 30*time.Second, 0.2) {
		t.Errorf("estimate %v ms, want about 30 s", got.EstimateMs)
	}
}

// Conntrack times out NAT66 mappings as it does IPv4 ones: the lifetime is
// measured over IPv6 too.
func TestLifetimeOverNAT66(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	const timeout = 5 * time.Second
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	v6 := l.AddIPv6(lab.IPv6NAT66)
	l.SetUDPTimeout(timeout, timeout)
	coturn(t, l, []netip.Addr{l.ServerIPs[0], l.ServerIPs[1], v6.ServerIPs[0], v6.ServerIPs[1]})
	srv := netip.AddrPortFrom(v6.ServerIPs[0], 3478).String()
	r := natcheck(t, l, "lifetime", "-6", "--json", "--min", "1s", "--max", "15s", "--sockets", "24", "-s", srv)
	got := lifetimeJSON(t, r)
	if r.code != 0 || got.Family != "ipv6" || got.EstimateMs == nil {
		t.Fatalf("exit %d family %s result %s (%s)", r.code, got.Family, got.Result, got.Reason)
	}
	est := time.Duration(*got.EstimateMs * float64(time.Millisecond))
	t.Logf("configured %v, measured %v over IPv6 in %v", timeout, est, r.elapsed)
	if !within(est, timeout, 0.2) {
		t.Errorf("measured %v, configured %v", est, timeout)
	}
	if m := got.Probes[0].MappedAddress; netip.MustParseAddrPort(m).Addr() != v6.PublicIP {
		t.Errorf("mapped %s, want the router's NAT66 address %s", m, v6.PublicIP)
	}
}

// A dead first server costs the server check a grace period: the live,
// capable second one is used and the measurement is not cut short.
func TestLifetimeDeadFirstServer(t *testing.T) {
	t.Parallel() // mostly idle waiting: lifetime runs overlap
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	coturn(t, l, l.ServerIPs[:])
	srv := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	r := natcheck(t, l, "lifetime", "--json", "--min", "1s", "--max", "3s", "-s", deadIP.String(), "-s", srv)
	got := lifetimeJSON(t, r)
	if r.code != 0 || got.Result != "longer-than-max" || got.Server != srv {
		t.Fatalf("exit %d result %q (%s) server %s; want longer-than-max with %s", r.code, got.Result, got.Reason, got.Server, srv)
	}
	if s := got.Servers[0]; s.ResponsePort != "no-answer" || !strings.Contains(s.Error, "grace") {
		t.Errorf("dead server %+v; want no answer within the grace period", s)
	}
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

// manyOutcome is one client's result in a crowd: right, unknown (a verdict
// that says less, never something false), wrong, or no-answer (exit 3).
type manyOutcome struct {
	class string
	got   report.TypeJSON
	err   error
	took  time.Duration
}

// classify compares a verdict with the topology's truth: any field that
// names a definite value other than the truth is wrong; "unknown" in
// place of the truth is unknown.
func classifyVerdict(got report.TypeJSON, want typeWant, publicIP string) string {
	class := "right"
	for _, f := range [][2]string{
		{string(got.Type), string(want.typ)},
		{string(got.Mapping), string(want.mapping)},
		{string(got.Filtering), string(want.filtering)},
	} {
		switch {
		case f[0] == f[1]:
		case f[0] == "unknown":
			class = "unknown"
		default:
			return "wrong"
		}
	}
	if got.PublicIP != "" && got.PublicIP != publicIP {
		return "wrong"
	}
	if want.nat != nil && got.NAT != tri.Unknown && got.NAT != tri.Of(*want.nat) {
		return "wrong"
	}
	return class
}

// runCrowd starts `natcheck type` in every client namespace of l at once
// (released together by one channel close) against server, and returns
// each outcome and the wall time from the release to the last exit.
func runCrowd(t *testing.T, l *lab.Lab, bin, server string, want typeWant) ([]manyOutcome, time.Duration) {
	t.Helper()
	outs := make([]manyOutcome, len(l.Clients))
	cmds := make([]*exec.Cmd, len(l.Clients))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, ns := range l.Clients {
		cmds[i] = l.Command(ctx, ns, bin, "type", "--json", "--timeout", "5s", "-s", server)
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	var start time.Time
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			t0 := time.Now()
			out, err := cmd.Output()
			o := &outs[i]
			o.took = time.Since(t0)
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee) && ee.ExitCode() == 3:
				o.class, o.err = "no-answer", fmt.Errorf("exit 3: %s", strings.TrimSpace(string(ee.Stderr)))
			case err != nil:
				o.class, o.err = "error", fmt.Errorf("%v: %s", err, out)
			default:
				if err := json.Unmarshal(out, &o.got); err != nil {
					o.class, o.err = "error", fmt.Errorf("stdout is not JSON: %v: %s", err, out)
					return
				}
				o.class = classifyVerdict(o.got, want, l.PublicIP.String())
			}
		}()
	}
	start = time.Now()
	close(release)
	wg.Wait()
	return outs, time.Since(start)
}

// serveMetric reads one counter from natcheck serve's /metrics page,
// fetched from inside the internet namespace.
func serveMetric(t *testing.T, l *lab.Lab, metricsAddr, name string) float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return l.Dial(l.Internet, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
		},
	}}
	resp, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not on the metrics page", name)
	return 0
}

// TestServeManyClients: many hosts behind one NAT (one public address, so
// one source address for the server) run `natcheck type` at the same
// moment against one `natcheck serve` with its default rate limit. Every
// verdict must be right. Each host is its own namespace on the router's
// LAN, as in an office or behind a carrier NAT: the server sees one
// address and many ports, and the NAT must also sort out hosts that chose
// the same local port.
//
// NATCHECK_MANY_CLIENTS (default 20) and NATCHECK_MANY_SERVE (extra
// `serve` flags, space-separated) measure other crowds and settings; the
// figures are in docs/serve.md.
func TestServeManyClients(t *testing.T) {
	lab.Require(t)
	n := 20
	if v := os.Getenv("NATCHECK_MANY_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > lab.MaxClients {
			t.Fatalf("NATCHECK_MANY_CLIENTS=%q: want 1 to %d", v, lab.MaxClients)
		}
	}
	kind := lab.PortRestrictedCone
	if v := os.Getenv("NATCHECK_MANY_KIND"); v != "" {
		kind = lab.Kind(v)
	}
	want, ok := typeVerdicts[kind]
	if !ok {
		t.Fatalf("NATCHECK_MANY_KIND=%q: no known verdict", kind)
	}
	// Clients and server run without the race detector: this test
	// measures the limiter's decisions, and race-instrumented processes
	// on a small machine that runs other test packages at the same time
	// measured its scheduling instead (with a race-built server, CHANGE-
	// REQUEST answers queued 110-190 ms behind the crowd's bursts, past
	// the clients' silence window, and 3 of 20 clients said `unknown`
	// filtering). The server's code runs under -race in ./server's tests.
	bin := lab.BuildNatcheckPlain(t)
	l := lab.New(t, lab.Options{Kind: kind, Clients: n})
	metrics := l.ServerIPs[0].String() + ":9478"
	serveArgs := append([]string{"serve", "--listen", l.ServerIPs[0].String(), "--listen", l.ServerIPs[1].String(),
		"--metrics", metrics}, strings.Fields(os.Getenv("NATCHECK_MANY_SERVE"))...)
	l.Start(t, l.Internet, bin, serveArgs...)
	waitUDP(t, l, netip.AddrPortFrom(l.ServerIPs[0], 3478))
	limited := `natcheck_serve_requests_dropped_total{transport="udp",reason="rate_limited"}`
	received := `natcheck_serve_requests_received_total{transport="udp"}`
	before := serveMetric(t, l, metrics, received)

	outs, wall := runCrowd(t, l, bin, l.ServerIPs[0].String(), want)

	count := map[string]int{}
	var slowest time.Duration
	for i, o := range outs {
		count[o.class]++
		slowest = max(slowest, o.took)
		if o.class != "right" {
			t.Errorf("client %d (%s): %s: type=%s mapping=%s filtering=%s public_ip=%s err=%v\nevidence:\n  %s",
				i+1, l.ClientIPs[i], o.class, o.got.Type, o.got.Mapping, o.got.Filtering, o.got.PublicIP, o.err,
				strings.Join(o.got.Evidence, "\n  "))
		}
	}
	t.Logf("%s, %d clients: right %d, unknown %d, wrong %d, no answer %d, error %d; wall %v (slowest client %v); server received %.0f requests, dropped %.0f as rate-limited",
		kind, n, count["right"], count["unknown"], count["wrong"], count["no-answer"], count["error"],
		wall.Round(time.Millisecond), slowest.Round(time.Millisecond),
		serveMetric(t, l, metrics, received)-before, serveMetric(t, l, metrics, limited))
}

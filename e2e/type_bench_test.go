package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/report"
)

// The type benchmarks are lab measurements, not unit tests: they take
// minutes and their figures go in docs/type-benchmark.md. They run only
// with NATCHECK_BENCH=1:
//
//	NATCHECK_BENCH=1 go test ./e2e -run TestTypeBench -v -timeout 30m
func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv("NATCHECK_BENCH") != "1" {
		t.Skip("lab benchmark: set NATCHECK_BENCH=1 to run")
	}
	lab.Require(t)
}

// timed runs a command in ns and returns its wall time and output.
func timed(t *testing.T, l *lab.Lab, ns, name string, args ...string) (time.Duration, []byte, error) {
	t.Helper()
	start := time.Now()
	out, err := l.Command(context.Background(), ns, name, args...).Output()
	return time.Since(start), out, err
}

func stats(ds []time.Duration) (median, mean, worst time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return s[len(s)/2], sum / time.Duration(len(s)), s[len(s)-1]
}

// TestTypeBenchSpeed: at 50 ms round trip (25 ms each way on the WAN),
// natcheck type and the stun client (RFC 3489 tests) against stund run
// alternately in one lab; natcheck must take at most half the time.
func TestTypeBenchSpeed(t *testing.T) {
	requireBench(t)
	bin := lab.BuildNatcheck(t)
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, DelayMs: 25})
	l.Start(t, l.Internet, "stund", "-h", l.ServerIPs[0].String(), "-a", l.ServerIPs[1].String())
	// stund serves 3478 and 3479 on both addresses (the stun client's
	// change requests need all four): wait until each one answers.
	for _, ip := range l.ServerIPs {
		for _, port := range []uint16{3478, 3479} {
			waitUDP(t, l, netip.AddrPortFrom(ip, port))
		}
	}
	const rounds = 20
	var ours, theirs []time.Duration
	for i := 0; i < rounds; i++ {
		d, out, err := timed(t, l, l.Client, bin, "type", "--json", "-s", l.ServerIPs[0].String())
		if err != nil {
			t.Fatalf("natcheck type: %v", err)
		}
		var got report.TypeJSON
		if err := json.Unmarshal(out, &got); err != nil || got.Type != "port-restricted-cone" {
			t.Fatalf("natcheck type: %v, type %q", err, got.Type)
		}
		ours = append(ours, d)
		// stun exits with a status that encodes its verdict: not an error.
		d, out, _ = timed(t, l, l.Client, "stun", l.ServerIPs[0].String())
		if len(out) == 0 {
			t.Fatal("stun printed nothing")
		}
		theirs = append(theirs, d)
	}
	om, oa, ow := stats(ours)
	sm, sa, sw := stats(theirs)
	t.Logf("RTT 50 ms, %d runs each, wall time including `ip netns exec`:", rounds)
	t.Logf("natcheck type : median %v  mean %v  worst %v", om.Round(time.Millisecond), oa.Round(time.Millisecond), ow.Round(time.Millisecond))
	t.Logf("stun (stund)  : median %v  mean %v  worst %v", sm.Round(time.Millisecond), sa.Round(time.Millisecond), sw.Round(time.Millisecond))
	t.Logf("ratio of medians: %.2f", float64(om)/float64(sm))
	if om*2 > sm {
		t.Errorf("natcheck median %v is more than half of stun's %v", om, sm)
	}
}

// TestTypeBenchLoss: 100 runs per topology at 10% loss each way and 50 ms
// round trip; mapping and filtering must be right in at least 99.
func TestTypeBenchLoss(t *testing.T) {
	requireBench(t)
	bin := lab.BuildNatcheck(t)
	runs := 100
	kinds := []lab.Kind{lab.PortRestrictedCone, lab.RestrictedCone, lab.FullCone, lab.Symmetric}
	if k := os.Getenv("NATCHECK_BENCH_KIND"); k != "" {
		kinds = []lab.Kind{lab.Kind(k)}
	}
	for _, kind := range kinds {
		want := typeVerdicts[kind]
		t.Run(string(kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: kind, LossPercent: 10, DelayMs: 25})
			startCoturn(t, l, bin)
			right, noAnswer := 0, 0
			var ds []time.Duration
			wrong := map[string]int{}
			for i := 0; i < runs; i++ {
				d, out, err := timed(t, l, l.Client, bin, "type", "--json", "-s", l.ServerIPs[0].String())
				if err != nil {
					noAnswer++
					if ee, ok := err.(*exec.ExitError); ok {
						t.Logf("run %d failed after %v: %v: %s", i, d, err, ee.Stderr)
					}
					continue
				}
				if d > time.Second {
					t.Logf("run %d took %v:\n%s", i, d, out)
				}
				ds = append(ds, d)
				var got report.TypeJSON
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("stdout is not JSON: %v", err)
				}
				if got.Mapping == want.mapping && got.Filtering == want.filtering {
					right++
				} else {
					wrong[string(got.Mapping)+"/"+string(got.Filtering)]++
					t.Logf("run %d wrong:\n%s", i, out)
				}
			}
			m, a, w := stats(ds)
			t.Logf("%s, 10%% loss each way, RTT 50 ms: %d/%d right (wrong: %v, errors: %d); time median %v mean %v worst %v",
				kind, right, runs, wrong, noAnswer, m.Round(time.Millisecond), a.Round(time.Millisecond), w.Round(time.Millisecond))
			if right < 99 {
				t.Errorf("%d/%d right, want at least 99", right, runs)
			}
		})
	}
}

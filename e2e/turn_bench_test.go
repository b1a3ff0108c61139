package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// The turn benchmark (bench/turn.sh; figures in docs/turn.md): at 50 ms
// round trip, natcheck turn against turnutils_uclient making the same
// checks (two allocations relaying to each other, -y; 20 packets; one
// client without RTCP), alternately, median of several runs each; then
// both against a silent server. turnutils_uclient's figures are measured
// even while natcheck has no turn command.
//
//	NATCHECK_BENCH=1 go test ./e2e -run TestTurnBench -v -timeout 30m
func TestTurnBench(t *testing.T) {
	requireBench(t)
	lab.RequireCoturn(t)
	if _, err := exec.LookPath("turnutils_uclient"); err != nil {
		t.Skip("turnutils_uclient (coturn-utils) not installed")
	}
	bin := lab.BuildNatcheck(t)
	out, err := exec.Command(bin, "turn", "--help").CombinedOutput()
	haveTurn := err == nil && strings.Contains(string(out), "--secret")

	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone, DelayMs: 25})
	c := l.StartCoturn(t, lab.CoturnOptions{Users: map[string]string{turnUser: turnPass}})
	silent := netip.AddrPortFrom(l.ServerIPs[0], 3580)
	l.DropUDP(t, l.Internet, silent)

	const rounds = 7
	var ours, theirs []time.Duration
	for i := 0; i < rounds; i++ {
		if haveTurn {
			d, out, err := timed(t, l, l.Client, bin, "turn", "--json", "--packets", "20",
				"-s", "turn:"+c.Addr().String(), "--user", turnUser, "--password", turnPass)
			var got turnJSON
			if err != nil || json.Unmarshal(out, &got) != nil || len(got.Servers) != 1 || got.Servers[0].Verdict != "works" {
				t.Fatalf("natcheck turn: %v\n%s", err, out)
			}
			ours = append(ours, d)
		}
		d, out, err := timed(t, l, l.Client, "turnutils_uclient", "-y", "-c", "-n", "20", "-m", "1",
			"-u", turnUser, "-w", turnPass, "-p", fmt.Sprint(c.Port), c.IP.String())
		if err != nil || !strings.Contains(string(out), "Total lost packets 0 ") {
			t.Fatalf("turnutils_uclient: %v\n%s", err, out)
		}
		theirs = append(theirs, d)
	}
	// Against a silent server: natcheck is bounded by --timeout; uclient
	// is stopped after 60 s.
	var oursSilent, theirsSilent time.Duration
	if haveTurn {
		d, _, _ := timed(t, l, l.Client, bin, "turn", "--json", "--timeout", "5s",
			"-s", "turn:"+silent.String(), "--user", turnUser, "--password", turnPass)
		oursSilent = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	start := time.Now()
	_ = l.Command(ctx, l.Client, "turnutils_uclient", "-y", "-c", "-n", "20", "-m", "1",
		"-u", turnUser, "-w", turnPass, "-p", fmt.Sprint(silent.Port()), silent.Addr().String()).Run()
	theirsSilent = time.Since(start)
	cancel()

	t.Logf("RTT 50 ms, %d runs each, 20 packets, wall time including `ip netns exec`:", rounds)
	sm, sa, sw := stats(theirs)
	t.Logf("turnutils_uclient -y : median %v  mean %v  worst %v", sm.Round(time.Millisecond), sa.Round(time.Millisecond), sw.Round(time.Millisecond))
	t.Logf("silent server: turnutils_uclient still running after %v (stopped)", theirsSilent.Round(time.Millisecond))
	if !haveTurn {
		t.Skip("natcheck has no turn command yet: turnutils_uclient's figures only")
	}
	om, oa, ow := stats(ours)
	t.Logf("natcheck turn        : median %v  mean %v  worst %v", om.Round(time.Millisecond), oa.Round(time.Millisecond), ow.Round(time.Millisecond))
	t.Logf("ratio of medians: %.2f", float64(om)/float64(sm))
	t.Logf("silent server: natcheck turn --timeout 5s: %v", oursSilent.Round(time.Millisecond))
	if om >= sm {
		t.Errorf("natcheck median %v is not below turnutils_uclient's %v", om, sm)
	}
	if oursSilent > 5*time.Second+2*time.Second {
		t.Errorf("natcheck took %v against a silent server with --timeout 5s", oursSilent)
	}
}

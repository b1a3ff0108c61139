package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// TestPeerBench: natcheck peer at 50 ms round trip between the sites
// (lab.PairOptions.DelayMs 25: 12.5 ms on each WAN link, so 25 ms to the
// servers), 10 runs of each case, both sides measured from their own
// moment of meeting (the -v line "met the other side ... after start")
// to their outcome:
//
//   - direct (port-restricted x full-cone), by tickets and through the
//     rendezvous: time_to_connect (target 1.5 s);
//   - relayed (symmetric x symmetric, coturn on both sides): time_to_connect;
//   - failed (symmetric x symmetric, no TURN): the run's end (target: the
//     default --timeout, 5 s).
//
// The rendezvous's cost is counted in round trips to the server (the -v
// line "met through the rendezvous ... after N round trips").
//
//	NATCHECK_BENCH=1 go test ./e2e -run TestPeerBench -v -timeout 30m
func TestPeerBench(t *testing.T) {
	requireBench(t)
	bin := requirePeer(t, true)
	lab.RequireCoturn(t)
	const runs = 10
	direct := lab.NewPair(t, lab.PairOptions{A: lab.PortRestrictedCone, B: lab.FullCone, DelayMs: 25})
	sym := lab.NewPair(t, lab.PairOptions{A: lab.Symmetric, B: lab.Symmetric, DelayMs: 25})
	peerServe(t, direct, bin)
	peerServe(t, sym, bin)
	c := sym.StartCoturn(t, lab.CoturnOptions{Port: peerTurnPort, Users: map[string]string{turnUser: turnPass}})
	turn := turnArgs(c, lab.Symmetric)

	type sample struct{ a, b time.Duration }
	cases := []struct {
		name, outcome string
		run           func(dir string) pairRun
		got           []sample
		trips         [][2]int
	}{
		{name: "direct, tickets", outcome: "direct", run: func(dir string) pairRun {
			return runTickets(direct, bin, dir, peerArgs(direct, "-v", "--pings", "5"), peerArgs(direct, "-v", "--pings", "5"), nil)
		}},
		{name: "direct, rendezvous", outcome: "direct", run: func(string) pairRun {
			return runRendezvous(direct, bin, peerArgs(direct, "-v", "--pings", "5"), peerArgs(direct, "-v", "--pings", "5"), nil)
		}},
		{name: "relayed, tickets", outcome: "relayed", run: func(dir string) pairRun {
			return runTickets(sym, bin, dir, peerArgs(sym, append([]string{"-v", "--pings", "5"}, turn...)...),
				peerArgs(sym, append([]string{"-v", "--pings", "5"}, turn...)...), nil)
		}},
		{name: "failed, tickets", outcome: "failed", run: func(dir string) pairRun {
			return runTickets(sym, bin, dir, peerArgs(sym, "-v"), peerArgs(sym, "-v"), nil)
		}},
	}
	for i := range runs {
		for k := range cases {
			cs := &cases[k]
			r := cs.run(t.TempDir())
			if r.setupErr != nil || r.a.json == nil || r.b.json == nil || r.a.json.Outcome != cs.outcome || r.b.json.Outcome != cs.outcome {
				r.log(t)
				t.Fatalf("%s, run %d: want %s both sides (%v)", cs.name, i, cs.outcome, r.setupErr)
			}
			a, errA := sinceMet(r.a, cs.outcome)
			b, errB := sinceMet(r.b, cs.outcome)
			if errA != nil || errB != nil {
				r.log(t)
				t.Fatalf("%s, run %d: A %v, B %v", cs.name, i, errA, errB)
			}
			cs.got = append(cs.got, sample{a, b})
			if r.meeting == "rendezvous" {
				cs.trips = append(cs.trips, [2]int{roundTrips(r.a.stderr), roundTrips(r.b.stderr)})
			}
		}
	}
	t.Logf("RTT 50 ms between the sites, 25 ms to the server, %d runs each; from each side's meeting to its outcome:", runs)
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for _, cs := range cases {
		var as, bs []time.Duration
		for _, s := range cs.got {
			as, bs = append(as, s.a), append(bs, s.b)
		}
		am, _, aw := stats(as)
		bm, _, bw := stats(bs)
		line := fmt.Sprintf("%-20s A median %s (worst %s), B median %s (worst %s)", cs.name+":", ms(am), ms(aw), ms(bm), ms(bw))
		if len(cs.trips) > 0 {
			var ta, tb []int
			for _, tr := range cs.trips {
				ta, tb = append(ta, tr[0]), append(tb, tr[1])
			}
			line += fmt.Sprintf("; round trips to the rendezvous: creator %v, joiner %v", ta, tb)
		}
		t.Log(line)
		switch {
		case cs.outcome == "direct" && max(am, bm) > 1500*time.Millisecond:
			t.Errorf("%s: median %s / %s, target 1.5 s", cs.name, ms(am), ms(bm))
		case cs.outcome == "failed" && max(am, bm) > 5500*time.Millisecond:
			t.Errorf("%s: median %s / %s, target 5 s", cs.name, ms(am), ms(bm))
		}
	}
}

var (
	metLine   = regexp.MustCompile(`\[peer\] met the other side (\S+) after start`)
	tripsLine = regexp.MustCompile(`\[peer\] met through the rendezvous \S+ after (\d+) round trips`)
)

// sinceMet is a side's time from its meeting to its outcome: time to
// connect when it connected, else the rest of its run.
func sinceMet(s side, outcome string) (time.Duration, error) {
	if outcome != "failed" {
		if s.json.TimeToConnectMs == nil {
			return 0, fmt.Errorf("no time_to_connect_ms")
		}
		return time.Duration(*s.json.TimeToConnectMs * float64(time.Millisecond)), nil
	}
	m := metLine.FindStringSubmatch(s.stderr)
	if m == nil {
		return 0, fmt.Errorf("no \"met the other side\" line in -v")
	}
	met, err := time.ParseDuration(m[1])
	if err != nil {
		return 0, err
	}
	return time.Duration(s.json.ElapsedMs*float64(time.Millisecond)) - met, nil
}

// roundTrips is the count the -v line gives, -1 without one.
func roundTrips(stderr string) int {
	m := tripsLine.FindStringSubmatch(stderr)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(strings.TrimSpace(m[1]))
	return n
}

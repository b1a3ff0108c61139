package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// TestPeerBench: natcheck peer at 50 ms round trip between the sites
// (lab.PairOptions.DelayMs 25: 12.5 ms on each WAN link, so 25 ms to the
// servers), 10 runs each:
//
//   - direct (port-restricted x full-cone): time to connect after both
//     sides met (the JSON's time_to_connect_ms; target 1.5 s);
//
//   - failed (symmetric x symmetric): A's wall time from the moment B's
//     answer reached it to its exit (target: the default --timeout, 5 s);
//
//   - the same direct pair through the rendezvous (when natcheck serve
//     has --rendezvous): B's wall time from start to exit, less its
//     time_to_connect and pings, is the meeting's cost, counted in round
//     trips to the server (25 ms each).
//
//     NATCHECK_BENCH=1 go test ./e2e -run TestPeerBench -v -timeout 30m
func TestPeerBench(t *testing.T) {
	requireBench(t)
	bin := requirePeer(t, true)
	const runs = 10
	const serverRTT = 25 * time.Millisecond
	direct := lab.NewPair(t, lab.PairOptions{A: lab.PortRestrictedCone, B: lab.FullCone, DelayMs: 25})
	failed := lab.NewPair(t, lab.PairOptions{A: lab.Symmetric, B: lab.Symmetric, DelayMs: 25})
	peerServe(t, direct, bin)
	peerServe(t, failed, bin)
	ms := func(f *float64) time.Duration {
		if f == nil {
			return -1
		}
		return time.Duration(*f * float64(time.Millisecond))
	}
	var connect, failAfterMet, meet []time.Duration
	for i := range runs {
		r := runTickets(direct, bin, t.TempDir(), peerArgs(direct, "--pings", "5"), peerArgs(direct, "--pings", "5"), nil)
		if r.setupErr != nil || r.a.json == nil || r.a.json.Outcome != "direct" {
			r.log(t)
			t.Fatalf("direct run %d: %v", i, r.setupErr)
		}
		connect = append(connect, ms(r.a.json.TimeToConnectMs))

		r = runTickets(failed, bin, t.TempDir(), peerArgs(failed), peerArgs(failed), nil)
		if r.setupErr != nil || r.a.json == nil || r.a.json.Outcome != "failed" {
			r.log(t)
			t.Fatalf("failed run %d: %v", i, r.setupErr)
		}
		failAfterMet = append(failAfterMet, r.a.elapsed-r.met.Sub(r.start))

		if hasRendezvous(bin) {
			r = runRendezvous(direct, bin, peerArgs(direct, "--pings", "5"), peerArgs(direct, "--pings", "5"), nil)
			if r.setupErr != nil || r.b.json == nil || r.b.json.Outcome != "direct" {
				r.log(t)
				t.Fatalf("rendezvous run %d: %v", i, r.setupErr)
			}
			// B's whole run less the ICE checks and the pings after them.
			rest := time.Duration(r.b.json.ElapsedMs*float64(time.Millisecond)) - ms(r.b.json.TimeToConnectMs)
			meet = append(meet, rest)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	cm, ca, cw := stats(connect)
	fm, fa, fw := stats(failAfterMet)
	t.Logf("RTT 50 ms between the sites, 25 ms to the server, %d runs each:", runs)
	t.Logf("direct, time_to_connect after meeting: median %v mean %v worst %v (target 1.5 s)", cm.Round(time.Millisecond), ca.Round(time.Millisecond), cw.Round(time.Millisecond))
	t.Logf("failed, A's exit after the answer arrived: median %v mean %v worst %v (target 5 s, the default --timeout)", fm.Round(time.Millisecond), fa.Round(time.Millisecond), fw.Round(time.Millisecond))
	if len(meet) > 0 {
		m := med(meet)
		t.Logf("rendezvous, B's run less ICE checks (gathering, NAT check, meeting, pings): median %v = %.1f server round trips", m.Round(time.Millisecond), float64(m)/float64(serverRTT))
	} else {
		t.Log("rendezvous: " + noRendezvous)
	}
	if cm > 1500*time.Millisecond {
		t.Errorf("direct median %v, target 1.5 s", cm)
	}
	if fm > 5500*time.Millisecond {
		t.Errorf("failed median %v, target 5 s", fm)
	}
}

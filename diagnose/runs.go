package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
)

// RunPause is the pause between two of the first five runs of --runs,
// LongRunPause the pause before each later run. Each run opens fresh
// sockets; the pause spreads the runs over time (a transient condition
// then shows as disagreement rather than hitting every run at once) and
// keeps the runs within servers' per-source rate limits. natcheck serve
// allows a burst of 200 requests and 50/s; one run sent it 59 requests in
// about 0.3 s in the lab (port-restricted cone, 50 ms RTT), so five runs
// 250 ms apart (about 295 requests in 2.5 s) stay within the burst and
// what refills meanwhile, and later runs, 1 s apart, send less than the
// 50/s that refills. Back-to-back runs without a pause exhausted the
// limit in the lab: the verify test's replies were dropped and about one
// run in eight ended unknown.
const (
	RunPause     = 250 * time.Millisecond
	LongRunPause = time.Second
)

// pauseBefore is the pause before run i (0-based; none before the first).
func pauseBefore(i int) time.Duration {
	switch {
	case i == 0:
		return 0
	case i < 5:
		return RunPause
	default:
		return LongRunPause
	}
}

// MaxRuns bounds --runs.
const MaxRuns = 100

// TypeRun is one of several runs of the behaviour tests.
type TypeRun struct {
	Result  *probe.TypeResult // nil when the run failed without a verdict
	Err     error             // why the run failed
	Elapsed time.Duration
}

// Verdict is the run's verdict: its type, mapping and filtering. A failed
// run has none (ok false).
func (r TypeRun) Verdict() (v RunVerdict, ok bool) {
	if r.Result == nil || r.Err != nil {
		return RunVerdict{}, false
	}
	return RunVerdict{Type: r.Result.Type, Mapping: r.Result.Mapping, Filtering: r.Result.Filtering}, true
}

// RunVerdict is what two runs must share to agree.
type RunVerdict struct {
	Type      nat.NATType
	Mapping   nat.Mapping
	Filtering nat.Filtering
}

// Runs is the record of `--runs N`: every run, and how far they agreed.
type Runs struct {
	Runs []TypeRun
	// Majority is the verdict more than half of the runs found; zero (and
	// Agreeing 0) when no verdict has such a majority.
	Majority RunVerdict
	// Agreeing counts the runs whose verdict is Majority.
	Agreeing int
	// Differed names what the runs did not all agree on, of "type",
	// "mapping", "filtering", "public address" and "failed" (a run ended
	// without a verdict), in that order.
	Differed []string
}

// HasMajority reports whether more than half of the runs agreed.
func (r *Runs) HasMajority() bool { return r.Agreeing > 0 }

// Majority finds the verdict more than half of the runs agree on. A failed
// run counts as a run that agrees with none. There is no tie-break: two
// verdicts found by equally many runs (or any verdict found by half of
// the runs or fewer) are no majority, and the result is ok false.
func Majority(runs []TypeRun) (v RunVerdict, agreeing int, ok bool) {
	counts := map[RunVerdict]int{}
	for _, r := range runs {
		if rv, ok := r.Verdict(); ok {
			counts[rv]++
		}
	}
	for rv, n := range counts {
		if 2*n > len(runs) {
			return rv, n, true
		}
	}
	return RunVerdict{}, 0, false
}

// differed lists what the runs did not all agree on.
func differed(runs []TypeRun) []string {
	types, mappings, filterings, publics := map[nat.NATType]bool{}, map[nat.Mapping]bool{}, map[nat.Filtering]bool{}, map[netip.Addr]bool{}
	failed := false
	for _, r := range runs {
		v, ok := r.Verdict()
		if !ok {
			failed = true
			continue
		}
		types[v.Type], mappings[v.Mapping], filterings[v.Filtering] = true, true, true
		publics[r.Result.Public.Addr().Unmap()] = true
	}
	out := []string{}
	for _, d := range []struct {
		name string
		n    int
	}{{"type", len(types)}, {"mapping", len(mappings)}, {"filtering", len(filterings)}, {"public address", len(publics)}} {
		if d.n > 1 {
			out = append(out, d.name)
		}
	}
	if failed {
		out = append(out, "failed")
	}
	return out
}

// noMajorityOutlook is the outlook when the runs found no common verdict.
const noMajorityOutlook = "Unknown: the runs disagreed; plan for a relay (TURN) as a fallback."

// RepeatType runs the behaviour tests n times, one run after another,
// each with fresh sockets (run opens its own) and its own timeout, with
// pauses between runs (pauseBefore), and combines them. The combined result is the
// first run that found the majority verdict, with Duration the time of
// all runs; without a majority it is the first run that finished, with
// type, mapping and filtering unknown and evidence saying why. RepeatType
// fails only when every run failed (with the first run's error) or when
// ctx ended (interrupted).
func RepeatType(ctx context.Context, n int, timeout time.Duration, run func(context.Context) (*probe.TypeResult, error)) (*probe.TypeResult, *Runs, error) {
	start := time.Now()
	rec := &Runs{}
	for i := range max(n, 1) {
		if p := pauseBefore(i); p > 0 {
			select {
			case <-time.After(p):
			case <-ctx.Done():
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, rec, err
		}
		runCtx, cancel := context.WithTimeout(ctx, timeout)
		t0 := time.Now()
		res, err := run(runCtx)
		cancel()
		if ctx.Err() != nil {
			return nil, rec, ctx.Err()
		}
		rec.Runs = append(rec.Runs, TypeRun{Result: res, Err: err, Elapsed: time.Since(t0)})
	}
	rec.Differed = differed(rec.Runs)
	v, agreeing, ok := Majority(rec.Runs)
	if ok {
		rec.Majority, rec.Agreeing = v, agreeing
	}
	var base *probe.TypeResult
	for _, r := range rec.Runs {
		if rv, done := r.Verdict(); done && (!ok || rv == v) {
			base = r.Result
			break
		}
	}
	if base == nil {
		return nil, rec, firstErr(rec.Runs)
	}
	combined := *base
	combined.Duration = time.Since(start)
	combined.Evidence = slices.Clone(base.Evidence)
	if !ok {
		combined.Type, combined.Mapping, combined.Filtering = nat.TypeUnknown, nat.MappingUnknown, nat.FilteringUnknown
		combined.Outlook = noMajorityOutlook
		combined.Evidence = append([]string{fmt.Sprintf(
			"no verdict was found by more than half of the %d runs (%s): the type is unknown; the other findings are run %d's",
			len(rec.Runs), verdictCounts(rec.Runs), runIndex(rec.Runs, base)+1)}, combined.Evidence...)
	}
	return &combined, rec, nil
}

func firstErr(runs []TypeRun) error {
	for _, r := range runs {
		if r.Err != nil {
			return r.Err
		}
	}
	return errors.New("no run finished")
}

func runIndex(runs []TypeRun, res *probe.TypeResult) int {
	for i, r := range runs {
		if r.Result == res {
			return i
		}
	}
	return -1
}

// verdictCounts is e.g. "3 symmetric, 2 port-restricted-cone", most
// frequent first, then in order of first appearance.
func verdictCounts(runs []TypeRun) string {
	var order []string
	counts := map[string]int{}
	for _, r := range runs {
		name := "failed"
		if v, ok := r.Verdict(); ok {
			name = string(v.Type)
		}
		if counts[name] == 0 {
			order = append(order, name)
		}
		counts[name]++
	}
	slices.SortStableFunc(order, func(a, b string) int { return counts[b] - counts[a] })
	parts := make([]string, len(order))
	for i, name := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[name], name)
	}
	return strings.Join(parts, ", ")
}

// AgreementNote is e.g. "5 of 5 runs", or "no majority of 4 runs".
func AgreementNote(r *Runs) string {
	if r == nil {
		return ""
	}
	if !r.HasMajority() {
		return fmt.Sprintf("no majority of %d runs", len(r.Runs))
	}
	return fmt.Sprintf("%d of %d runs", r.Agreeing, len(r.Runs))
}

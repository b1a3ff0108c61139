package diagnose

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

var (
	prc = RunVerdict{nat.TypePortRestrictedCone, nat.EndpointIndependent, nat.AddressAndPortDependent}
	rc  = RunVerdict{nat.TypeRestrictedCone, nat.EndpointIndependent, nat.AddressDependent}
	sym = RunVerdict{nat.TypeSymmetric, nat.AddressAndPortDependent, nat.AddressAndPortDependent}
	// symAD is symmetric too, but with another mapping: a verdict of its own.
	symAD = RunVerdict{nat.TypeSymmetric, nat.AddressDependent, nat.AddressAndPortDependent}
)

// run is a finished run with verdict v seen from public IP ip; a zero v
// is a failed run.
func run(v RunVerdict, ip string) TypeRun {
	if v == (RunVerdict{}) {
		return TypeRun{Err: stunclient.ErrNoAnswer}
	}
	r := &probe.TypeResult{Verdict: nat.Verdict{Type: v.Type, Mapping: v.Mapping, Filtering: v.Filtering,
		Public: netip.AddrPortFrom(netip.MustParseAddr(ip), 40000)}}
	return TypeRun{Result: r}
}

func TestMajority(t *testing.T) {
	const a, b = "203.0.113.2", "198.51.100.7"
	failed := RunVerdict{}
	cases := []struct {
		name     string
		runs     []TypeRun
		want     RunVerdict
		agreeing int // 0: no majority
		differed []string
	}{
		{"one run", []TypeRun{run(prc, a)}, prc, 1, []string{}},
		{"unanimous", []TypeRun{run(prc, a), run(prc, a), run(prc, a), run(prc, a), run(prc, a)}, prc, 5, []string{}},
		{"4 of 5, filtering differs", []TypeRun{run(prc, a), run(rc, a), run(prc, a), run(prc, a), run(prc, a)}, prc, 4,
			[]string{"type", "filtering"}},
		{"3 of 5 is a majority", []TypeRun{run(sym, a), run(prc, a), run(sym, a), run(prc, a), run(sym, a)}, sym, 3,
			[]string{"type", "mapping"}},
		{"2 of 4 is a tie: no majority", []TypeRun{run(sym, a), run(prc, a), run(sym, a), run(prc, a)}, RunVerdict{}, 0,
			[]string{"type", "mapping"}},
		{"1 of 2 is a tie: no majority", []TypeRun{run(prc, a), run(rc, a)}, RunVerdict{}, 0, []string{"type", "filtering"}},
		{"2-2-1 of 5: the most found is still no majority", []TypeRun{run(sym, a), run(prc, a), run(rc, a), run(prc, a), run(sym, a)},
			RunVerdict{}, 0, []string{"type", "mapping", "filtering"}},
		{"same type, other mapping: two verdicts", []TypeRun{run(sym, a), run(symAD, a), run(sym, a)}, sym, 2, []string{"mapping"}},
		{"same type, other mapping, tie", []TypeRun{run(sym, a), run(symAD, a)}, RunVerdict{}, 0, []string{"mapping"}},
		{"failed runs agree with none: 2 of 3", []TypeRun{run(prc, a), run(failed, a), run(prc, a)}, prc, 2, []string{"failed"}},
		{"failed runs agree with none: 2 of 4 is no majority", []TypeRun{run(prc, a), run(failed, a), run(prc, a), run(failed, a)},
			RunVerdict{}, 0, []string{"failed"}},
		{"every run failed", []TypeRun{run(failed, a), run(failed, a)}, RunVerdict{}, 0, []string{"failed"}},
		{"public address differs, verdict agrees", []TypeRun{run(prc, a), run(prc, b), run(prc, a)}, prc, 3, []string{"public address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, n, ok := Majority(c.runs)
			if ok != (c.agreeing > 0) || v != c.want || n != c.agreeing {
				t.Errorf("Majority = %v, %d, %v; want %v, %d", v, n, ok, c.want, c.agreeing)
			}
			if d := differed(c.runs); !slices.Equal(d, c.differed) {
				t.Errorf("differed %q, want %q", d, c.differed)
			}
		})
	}
}

// fakeRuns returns a run function yielding the given runs in turn, and
// the number of calls made.
func fakeRuns(runs ...TypeRun) (func(context.Context) (*probe.TypeResult, error), *atomic.Int32) {
	var n atomic.Int32
	return func(ctx context.Context) (*probe.TypeResult, error) {
		i := n.Add(1) - 1
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("a run without its own deadline")
		}
		r := runs[int(i)%len(runs)]
		return r.Result, r.Err
	}, &n
}

func TestRepeatTypeMajority(t *testing.T) {
	f, calls := fakeRuns(run(rc, "203.0.113.2"), run(prc, "203.0.113.2"), run(prc, "203.0.113.3"))
	start := time.Now()
	res, rec, err := RepeatType(context.Background(), 3, time.Second, f)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || len(rec.Runs) != 3 {
		t.Fatalf("%d calls, %d runs recorded", calls.Load(), len(rec.Runs))
	}
	if el := time.Since(start); el < 2*RunPause {
		t.Errorf("3 runs took %v: the runs were not paused %v apart", el, RunPause)
	}
	if res.Type != nat.TypePortRestrictedCone || res.Public.Addr().String() != "203.0.113.2" || rec.Agreeing != 2 || rec.Majority != prc {
		t.Errorf("combined %v from %v, agreement %d: want run 2's verdict, 2 agreeing", res.Type, res.Public, rec.Agreeing)
	}
	if res.Duration < 2*RunPause {
		t.Errorf("duration %v: should span every run", res.Duration)
	}
	if got := AgreementNote(rec); got != "2 of 3 runs" {
		t.Errorf("note %q", got)
	}
}

func TestRepeatTypeNoMajorityIsUnknown(t *testing.T) {
	f, _ := fakeRuns(run(sym, "203.0.113.2"), run(prc, "203.0.113.2"))
	res, rec, err := RepeatType(context.Background(), 2, time.Second, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != nat.TypeUnknown || res.Mapping != nat.MappingUnknown || res.Filtering != nat.FilteringUnknown || rec.HasMajority() {
		t.Errorf("a tie gave %v / %v / %v", res.Type, res.Mapping, res.Filtering)
	}
	if len(res.Evidence) == 0 || !strings.Contains(res.Evidence[0], "1 symmetric, 1 port-restricted-cone") {
		t.Errorf("evidence %q", res.Evidence)
	}
	if got := AgreementNote(rec); got != "no majority of 2 runs" {
		t.Errorf("note %q", got)
	}
}

func TestRepeatTypeEveryRunFailed(t *testing.T) {
	f, _ := fakeRuns(run(RunVerdict{}, ""))
	res, rec, err := RepeatType(context.Background(), 2, time.Second, f)
	if !errors.Is(err, stunclient.ErrNoAnswer) || res != nil || len(rec.Runs) != 2 {
		t.Errorf("result %v, %d runs, err %v; want ErrNoAnswer after 2 runs", res, len(rec.Runs), err)
	}
}

func TestRepeatTypeInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	f := func(context.Context) (*probe.TypeResult, error) {
		if n.Add(1) == 2 {
			cancel()
		}
		return run(prc, "203.0.113.2").Result, nil
	}
	_, _, err := RepeatType(ctx, 5, time.Second, f)
	if !errors.Is(err, context.Canceled) || n.Load() != 2 {
		t.Errorf("err %v after %d runs; want context.Canceled after 2", err, n.Load())
	}
}

func TestRunsBudget(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2*time.Second + RunPause},
		{5, 5*time.Second + 4*RunPause}, {7, 7*time.Second + 4*RunPause + 2*LongRunPause},
	} {
		if got := RunsBudget(c.n, time.Second); got != c.want {
			t.Errorf("RunsBudget(%d, 1s) = %v, want %v", c.n, got, c.want)
		}
	}
}

package diagnose

import (
	"context"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// TypeOptions choose what Type does.
type TypeOptions struct {
	Servers []stunclient.Server
	Family  stunclient.Family
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	// Timeout bounds the behaviour tests (each run's, with Runs).
	Timeout time.Duration
	// Runs, when above 0, repeats the tests that many times (RepeatType)
	// and records every run; 0 is one run without that record.
	Runs int
	// Bind is the local address (and mapping port) to test from; zero
	// means any.
	Bind netip.AddrPort
	// Lifetime adds the binding-lifetime measurement, run beside the
	// tests; it lasts about as long as the lifetime it measures, so it has
	// Timeout plus lifetime.Budget(LifetimeMax).
	Lifetime    bool
	LifetimeMax time.Duration
	// Logf, when set, receives the behaviour tests' progress.
	Logf func(format string, args ...any)
	// RunType and MeasureLifetime are the probes; nil means probe.RunType
	// and lifetime.Measure (tests pass fakes).
	RunType         func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)
	MeasureLifetime func(context.Context, lifetime.Options) (*lifetime.Result, error)
}

// TypeResult is the NAT type and, when asked for, the mapping lifetime.
type TypeResult struct {
	Type *probe.TypeResult
	// Lifetime is nil when not asked for or when the measurement failed;
	// LifetimeErr then says why.
	Lifetime    *lifetime.Result
	LifetimeErr error
	// Runs is every run of TypeOptions.Runs and their agreement; nil
	// without Runs.
	Runs *Runs
}

// Type runs the NAT behaviour tests and, with o.Lifetime, the lifetime
// measurement beside them, for `natcheck type`. A failed measurement is
// part of the result, not an error. Type fails when the tests fail (the
// measurement is then cancelled), and with ctx's error when ctx ended
// before the measurement finished. Either way it returns only after
// everything it started has ended.
func Type(ctx context.Context, o TypeOptions) (*TypeResult, error) {
	runType, measure := o.RunType, o.MeasureLifetime
	if runType == nil {
		runType = probe.RunType
	}
	if measure == nil {
		measure = lifetime.Measure
	}
	type outcome struct {
		l   *lifetime.Result
		err error
	}
	life := make(chan outcome, 1)
	lifeCtx, cancelLife := context.WithTimeout(ctx, RunsBudget(o.Runs, o.Timeout)+lifetime.Budget(o.LifetimeMax))
	defer cancelLife()
	if o.Lifetime {
		go func() {
			l, err := measure(lifeCtx, lifetime.Options{Servers: o.Servers, Family: o.Family, Resolver: o.Resolver, Max: o.LifetimeMax})
			life <- outcome{l, err}
		}()
	} else {
		life <- outcome{}
	}

	one := func(ctx context.Context) (*probe.TypeResult, error) {
		return runType(ctx, probe.TypeOptions{Servers: o.Servers, Family: o.Family, Logf: o.Logf, Resolver: o.Resolver, Bind: o.Bind})
	}
	var t *probe.TypeResult
	var runs *Runs
	var err error
	if o.Runs > 0 {
		t, runs, err = RepeatType(ctx, o.Runs, o.Timeout, one)
	} else {
		typeCtx, cancel := context.WithTimeout(ctx, o.Timeout)
		t, err = one(typeCtx)
		cancel()
	}
	if err != nil {
		// Without a type there is nothing to report: stop measuring.
		cancelLife()
		<-life
		return nil, err
	}
	l := <-life
	if l.err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &TypeResult{Type: t, Lifetime: l.l, LifetimeErr: l.err, Runs: runs}, nil
}

// RunsBudget is the longest n runs of RepeatType take with this timeout
// each: n timeouts and the pauses between them (one run's timeout for n
// below 2).
func RunsBudget(n int, timeout time.Duration) time.Duration {
	d := timeout
	for i := 1; i < n; i++ {
		d += timeout + pauseBefore(i)
	}
	return d
}

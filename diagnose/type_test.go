package diagnose

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// When the type test fails, the lifetime measurement beside it is
// cancelled and has returned before Type returns: nothing is left running.
func TestTypeFailureCancelsAndAwaitsLifetime(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	s, err := stunclient.ParseServer(dead.String())
	if err != nil {
		t.Fatal(err)
	}
	var returned atomic.Bool
	var ended atomic.Value // the measurement's ctx.Err()
	start := time.Now()
	res, err := Type(context.Background(), TypeOptions{
		Servers: []stunclient.Server{s}, Family: stunclient.IPv4, Timeout: 300 * time.Millisecond,
		Lifetime: true, LifetimeMax: time.Minute,
		MeasureLifetime: func(ctx context.Context, _ lifetime.Options) (*lifetime.Result, error) {
			defer returned.Store(true)
			<-ctx.Done()
			ended.Store(ctx.Err())
			return nil, ctx.Err()
		},
	})
	if !errors.Is(err, stunclient.ErrNoAnswer) || res != nil {
		t.Fatalf("result %+v, err %v; want ErrNoAnswer", res, err)
	}
	if !returned.Load() {
		t.Fatal("Type returned while the lifetime measurement was still running")
	}
	// Its own deadline is a minute and more away: only a cancel ends it.
	if got := ended.Load(); got != context.Canceled {
		t.Errorf("the measurement ended with %v, want context.Canceled", got)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v with a 300ms timeout", el)
	}
}

// Both parts run at once, each under its own deadline, and their results
// come back together; a failed measurement is part of the result.
func TestTypeWithLifetime(t *testing.T) {
	typ := &probe.TypeResult{Verdict: nat.Verdict{Type: nat.TypeFullCone}}
	for _, tc := range []struct {
		name string
		l    *lifetime.Result
		err  error
	}{
		{"measured", &lifetime.Result{Result: lifetime.Measured}, nil},
		{"failed", nil, errors.New("no server honours RESPONSE-PORT")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var typeLeft, lifeLeft time.Duration
			var gotMax time.Duration
			lifeStarted := make(chan struct{})
			res, err := Type(context.Background(), TypeOptions{
				Servers: []stunclient.Server{{Host: "203.0.113.10", Port: 3478}}, Family: stunclient.IPv4,
				Timeout: 2 * time.Second, Lifetime: true, LifetimeMax: 40 * time.Second,
				RunType: func(ctx context.Context, _ probe.TypeOptions) (*probe.TypeResult, error) {
					dl, _ := ctx.Deadline()
					typeLeft = time.Until(dl)
					select {
					case <-lifeStarted:
						return typ, nil
					case <-ctx.Done():
						return nil, errors.New("the measurement did not run beside the tests")
					}
				},
				MeasureLifetime: func(ctx context.Context, lo lifetime.Options) (*lifetime.Result, error) {
					dl, _ := ctx.Deadline()
					lifeLeft, gotMax = time.Until(dl), lo.Max
					close(lifeStarted)
					return tc.l, tc.err
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Type != typ || res.Lifetime != tc.l || res.LifetimeErr != tc.err {
				t.Errorf("result %+v", res)
			}
			if typeLeft > 2*time.Second || typeLeft < time.Second {
				t.Errorf("type deadline %v away, want about 2s", typeLeft)
			}
			if want := 2*time.Second + lifetime.Budget(40*time.Second); lifeLeft > want || lifeLeft < want-time.Second || gotMax != 40*time.Second {
				t.Errorf("lifetime deadline %v away, max %v; want about %v and 40s", lifeLeft, gotMax, want)
			}
		})
	}
}

// Without Lifetime nothing is measured.
func TestTypeWithoutLifetime(t *testing.T) {
	typ := &probe.TypeResult{Verdict: nat.Verdict{Type: nat.TypeSymmetric}}
	res, err := Type(context.Background(), TypeOptions{
		Timeout: time.Second,
		RunType: func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) { return typ, nil },
		MeasureLifetime: func(context.Context, lifetime.Options) (*lifetime.Result, error) {
			t.Error("measured without Lifetime")
			return nil, nil
		},
	})
	if err != nil || res.Type != typ || res.Lifetime != nil || res.LifetimeErr != nil {
		t.Errorf("result %+v, err %v", res, err)
	}
}

// Interrupted while measuring: the interruption is the error.
func TestTypeInterruptedDuringLifetime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Type(ctx, TypeOptions{
		Timeout: time.Second, Lifetime: true, LifetimeMax: time.Minute,
		RunType: func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) {
			cancel()
			return &probe.TypeResult{}, nil
		},
		MeasureLifetime: func(ctx context.Context, _ lifetime.Options) (*lifetime.Result, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Errorf("result %+v, err %v; want context.Canceled", res, err)
	}
}

package every

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// schedule runs Run with runs taking durations[i] each, until they are
// used up, and returns each run's tick as offsets from the start.
func schedule(t *testing.T, interval time.Duration, durations []time.Duration) (seqs []int, starts []time.Duration) {
	t.Helper()
	c := testutil.NewInstantClock(t0)
	stop := errors.New("done")
	err := Run(context.Background(), interval, c, func(_ context.Context, tk Tick) error {
		if tk.Start.Before(tk.Due) {
			t.Errorf("run %d started at %v, before it was due at %v", tk.Seq, tk.Start.Sub(t0), tk.Due.Sub(t0))
		}
		seqs = append(seqs, tk.Seq)
		starts = append(starts, tk.Start.Sub(t0))
		c.Advance(durations[len(seqs)-1])
		if len(seqs) == len(durations) {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Run returned %v, want the run's error", err)
	}
	return seqs, starts
}

func TestSchedule(t *testing.T) {
	const s = time.Second
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		durations []time.Duration
		seqs      []int
		starts    []time.Duration
	}{
		// Runs start every interval, not an interval after the last one
		// ended: no drift however long each run takes.
		{"short runs keep the schedule", []time.Duration{300 * ms, 999 * ms, 0, 10 * ms},
			[]int{1, 2, 3, 4}, []time.Duration{0, s, 2 * s, 3 * s}},
		{"a run of exactly the interval is followed at once", []time.Duration{s, s, s},
			[]int{1, 2, 3}, []time.Duration{0, s, 2 * s}},
		// A run that overruns skips the slots that passed meanwhile.
		{"an overrun skips the slots it covered", []time.Duration{2500 * ms, 100 * ms, 0},
			[]int{1, 4, 5}, []time.Duration{0, 3 * s, 4 * s}},
		{"an overrun by a hair skips one slot", []time.Duration{s + ms, 0},
			[]int{1, 3}, []time.Duration{0, 2 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqs, starts := schedule(t, s, tc.durations)
			if !reflect.DeepEqual(seqs, tc.seqs) || !reflect.DeepEqual(starts, tc.starts) {
				t.Errorf("runs %v at %v, want %v at %v", seqs, starts, tc.seqs, tc.starts)
			}
		})
	}
}

// Cancelling while a run is in flight ends Run after that run, with the
// context's error, and starts no other run.
func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	err := Run(ctx, time.Second, testutil.NewInstantClock(t0), func(ctx context.Context, tk Tick) error {
		runs++
		if tk.Seq == 2 {
			cancel()
			<-ctx.Done() // the run in flight sees the cancellation
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || runs != 2 {
		t.Errorf("Run = %v after %d runs, want context.Canceled after 2", err, runs)
	}
}

// A context that ends while Run waits for the next slot ends the wait.
func TestRunStopsWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	// The real clock: the wait is a real hour, which only the
	// cancellation can end.
	err := Run(ctx, time.Hour, nil, func(context.Context, Tick) error {
		runs++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || runs != 1 {
		t.Errorf("Run = %v after %d runs, want context.Canceled after 1", err, runs)
	}
}

func TestRunRefusesNonPositiveInterval(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if err := Run(context.Background(), d, testutil.NewInstantClock(time.Time{}), func(context.Context, Tick) error { return nil }); err == nil {
			t.Errorf("interval %v accepted", d)
		}
	}
}

func TestNextSlot(t *testing.T) {
	for _, tc := range []struct {
		slot    int
		elapsed time.Duration
		want    int
	}{
		{0, 0, 1}, {0, 999, 1}, {0, 1000, 1}, {0, 1001, 2}, {3, 3500, 4}, {3, 4000, 4}, {3, 9001, 10},
	} {
		if got := nextSlot(tc.slot, tc.elapsed, 1000); got != tc.want {
			t.Errorf("nextSlot(%d, %d, 1000) = %d, want %d", tc.slot, tc.elapsed, got, tc.want)
		}
	}
}

func TestTracker(t *testing.T) {
	ip := func(v string) Fact { return Fact{Name: "public_ip", Label: "public IP", Value: v} }
	st := func(v string) Fact { return Fact{Name: "status", Label: "status", Value: v} }
	var tr Tracker
	steps := []struct {
		facts    []Fact
		compared bool
		changes  []Change
	}{
		{[]Fact{st("ok"), ip("203.0.113.2")}, false, []Change{}},
		{[]Fact{st("ok"), ip("203.0.113.2")}, true, []Change{}},
		// An outage: no IP known; the status changes.
		{[]Fact{st("no-answer"), ip("")}, true, []Change{{"status", "status", "ok", "no-answer"}}},
		// Back with another address: compared with the last one known.
		{[]Fact{st("ok"), ip("198.51.100.7")}, true, []Change{
			{"status", "status", "no-answer", "ok"}, {"public_ip", "public IP", "203.0.113.2", "198.51.100.7"}}},
		// A fact seen for the first time is no change.
		{[]Fact{st("ok"), ip("198.51.100.7"), {Name: "server:a", Label: "server a", Value: "up"}}, true, []Change{}},
	}
	for i, s := range steps {
		changes, compared := tr.Observe(s.facts)
		if compared != s.compared || !reflect.DeepEqual(changes, s.changes) {
			t.Errorf("run %d: %v (compared %v), want %v (%v)", i+1, changes, compared, s.changes, s.compared)
		}
	}
	got := Describe([]Change{{"status", "status", "ok", "no-answer"}, {"public_ip", "public IP", "a", "b"}})
	if want := "status ok -> no-answer; public IP a -> b"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

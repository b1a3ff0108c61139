package gather

import (
	"context"
	"testing"
	"time"
)

// Tasks for the tests: their behaviour is scripted, their timing is not
// asserted except where a bound is orders of magnitude away.

// dead never answers and returns when cancelled.
func dead(ctx context.Context, _ func(Answer)) string {
	<-ctx.Done()
	return "dead"
}

// live answers at once with the given RTT and returns.
func live(rtt time.Duration) Task[string] {
	return func(_ context.Context, answered func(Answer)) string {
		answered(Answer{RTT: rtt})
		return "live"
	}
}

// after answers once release is closed, unless cancelled first.
func after(release <-chan struct{}, decisive bool) Task[string] {
	return func(ctx context.Context, answered func(Answer)) string {
		select {
		case <-release:
			answered(Answer{RTT: time.Millisecond, Decisive: decisive})
			return "answered"
		case <-ctx.Done():
			return "cancelled"
		}
	}
}

// runGuarded fails the test instead of hanging when Run does not return.
func runGuarded(t *testing.T, ctx context.Context, tasks []Task[string], o Options[string]) []Result[string] {
	t.Helper()
	done := make(chan []Result[string], 1)
	go func() { done <- Run(ctx, tasks, o) }()
	select {
	case rs := <-done:
		return rs
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func states(rs []Result[string]) []State {
	out := make([]State, len(rs))
	for i, r := range rs {
		out[i] = r.State
	}
	return out
}

func wantStates(t *testing.T, rs []Result[string], want ...State) {
	t.Helper()
	got := states(rs)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("states = %v, want %v", got, want)
		}
	}
}

func TestDeadFirstServerCostsOnlyTheGrace(t *testing.T) {
	// No deadline on ctx: only the grace can end the dead task.
	rs := runGuarded(t, context.Background(), []Task[string]{dead, live(time.Millisecond)},
		Options[string]{Grace: Grace{Factor: 1, Floor: 10 * time.Millisecond}})
	wantStates(t, rs, GaveUp, Finished)
	if rs[0].Answered || !rs[1].Answered || rs[1].RTT != time.Millisecond {
		t.Fatalf("answered/rtt wrong: %+v", rs)
	}
	if rs[0].Value != "dead" || rs[1].Value != "live" {
		t.Fatalf("values = %q, %q", rs[0].Value, rs[1].Value)
	}
	if rs[0].State.Err() != ErrGaveUp {
		t.Fatalf("GaveUp.Err() = %v", rs[0].State.Err())
	}
}

func TestSlowServerWithinGraceIsKept(t *testing.T) {
	release := make(chan struct{})
	tasks := []Task[string]{
		func(ctx context.Context, answered func(Answer)) string {
			answered(Answer{RTT: time.Millisecond})
			close(release) // the slow one answers after the first
			return "fast"
		},
		after(release, false),
	}
	start := time.Now()
	rs := runGuarded(t, context.Background(), tasks, Options[string]{Grace: Grace{Floor: time.Hour}})
	wantStates(t, rs, Finished, Finished)
	if rs[1].Value != "answered" {
		t.Fatalf("slow server's value = %q", rs[1].Value)
	}
	// Run ends when the last task does, not when the (hour-long) grace would.
	if time.Since(start) > 20*time.Second {
		t.Fatal("Run waited for the grace although every task had finished")
	}
}

func TestAllDeadEndWithTheCallersDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rs := runGuarded(t, ctx, []Task[string]{dead, dead, dead}, Options[string]{Grace: Survey})
	wantStates(t, rs, Stopped, Stopped, Stopped)
	for _, r := range rs {
		if r.Answered {
			t.Fatalf("a dead task answered: %+v", r)
		}
	}
}

func TestCancellationEndsEveryTask(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 2)
	waiting := func(ctx context.Context, answered func(Answer)) string {
		started <- struct{}{}
		<-ctx.Done()
		return "stopped"
	}
	go func() { <-started; <-started; cancel() }()
	rs := runGuarded(t, ctx, []Task[string]{waiting, waiting}, Options[string]{Grace: Survey})
	wantStates(t, rs, Stopped, Stopped)
}

func TestGraceExpiryCancelsOnlySilentTasks(t *testing.T) {
	silentEnded := make(chan struct{})
	tasks := []Task[string]{
		// Answers at once, then keeps working (a verify test, say) until
		// the silent task has been given up.
		func(ctx context.Context, answered func(Answer)) string {
			answered(Answer{RTT: time.Millisecond})
			select {
			case <-silentEnded:
				return "finished its work"
			case <-ctx.Done():
				return "cancelled although it answered"
			}
		},
		func(ctx context.Context, _ func(Answer)) string {
			<-ctx.Done()
			close(silentEnded)
			return "given up"
		},
	}
	rs := runGuarded(t, context.Background(), tasks, Options[string]{Grace: Grace{Floor: 5 * time.Millisecond}})
	wantStates(t, rs, Finished, GaveUp)
	if rs[0].Value != "finished its work" {
		t.Fatalf("answered task: %q", rs[0].Value)
	}
}

func TestDecisiveAnswerShortensTheGrace(t *testing.T) {
	release := make(chan struct{})
	tasks := []Task[string]{
		live(time.Millisecond),
		func(ctx context.Context, answered func(Answer)) string {
			answered(Answer{RTT: time.Millisecond, Decisive: true})
			return "decisive"
		},
		after(release, false), // never released: only the grace ends it
	}
	// Without the decisive grace the silent task would hold Run an hour.
	rs := runGuarded(t, context.Background(), tasks,
		Options[string]{Grace: Grace{Floor: time.Hour}, Decisive: Grace{Floor: time.Millisecond}})
	wantStates(t, rs, Finished, Finished, GaveUp)
}

func TestLaterAnswerNeverExtendsTheGrace(t *testing.T) {
	release := make(chan struct{})
	tasks := []Task[string]{
		func(ctx context.Context, answered func(Answer)) string {
			answered(Answer{RTT: time.Millisecond})
			close(release)
			return "first"
		},
		// Answers after the first with a huge RTT: the grace must stay the
		// first answer's.
		func(ctx context.Context, answered func(Answer)) string {
			<-release
			answered(Answer{RTT: time.Hour})
			return "second"
		},
		dead,
	}
	rs := runGuarded(t, context.Background(), tasks, Options[string]{Grace: Grace{Factor: 1, Floor: 5 * time.Millisecond}})
	wantStates(t, rs, Finished, Finished, GaveUp)
}

func TestEnoughCancelsTheRest(t *testing.T) {
	calls := 0
	enough := func(rs []Result[string]) bool {
		calls++
		return rs[0].State == Finished
	}
	rs := runGuarded(t, context.Background(), []Task[string]{live(time.Millisecond), dead, dead},
		Options[string]{Grace: Grace{Floor: time.Hour}, Enough: enough})
	wantStates(t, rs, Finished, NotNeeded, NotNeeded)
	if rs[1].State.Err() != ErrNotNeeded {
		t.Fatalf("NotNeeded.Err() = %v", rs[1].State.Err())
	}
	if calls == 0 {
		t.Fatal("Enough was never asked")
	}
}

func TestEnoughSeesRunningTasks(t *testing.T) {
	// An in-order choice: the first task decides once it finished; a later
	// task's answer alone is not enough while an earlier one runs.
	release := make(chan struct{})
	sawRunning := false
	enough := func(rs []Result[string]) bool {
		if !sawRunning && rs[0].State == Running && rs[1].State == Finished {
			sawRunning = true
			close(release)
		}
		return rs[0].State == Finished
	}
	rs := runGuarded(t, context.Background(), []Task[string]{after(release, false), live(time.Millisecond)},
		Options[string]{Grace: Grace{Floor: time.Hour}, Enough: enough})
	wantStates(t, rs, Finished, Finished)
	if !sawRunning {
		t.Fatal("Enough never saw the first task running")
	}
}

func TestNoTasks(t *testing.T) {
	if rs := Run(context.Background(), []Task[string]{}, Options[string]{}); len(rs) != 0 {
		t.Fatalf("results for no tasks: %v", rs)
	}
}

func TestGraceAfter(t *testing.T) {
	tests := []struct {
		name string
		g    Grace
		rtt  time.Duration
		want time.Duration
	}{
		{"confirm floor", Confirm, 4 * time.Millisecond, 5 * time.Millisecond},
		{"confirm quarter", Confirm, 100 * time.Millisecond, 25 * time.Millisecond},
		{"confirm ceiling", Confirm, time.Second, 50 * time.Millisecond},
		{"survey floor", Survey, 50 * time.Millisecond, time.Second},
		{"survey eight rtts", Survey, 200 * time.Millisecond, 1600 * time.Millisecond},
		{"await rfc5780 floor", AwaitRFC5780, 10 * time.Millisecond, 500 * time.Millisecond},
		{"corroborate", Corroborate, 50 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.g.After(tt.rtt); got != tt.want {
				t.Fatalf("After(%v) = %v, want %v", tt.rtt, got, tt.want)
			}
		})
	}
}

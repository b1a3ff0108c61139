// Package gather asks several servers at once, takes the first answers and
// gives the silent ones a grace: the one place natcheck decides how much a
// dead server may cost.
//
// Every prober that asks more than one server (whoami, the type test's
// binding round, the server checks, the TCP mapping test, the lifetime
// measurement's server choice) runs its servers as Tasks of one Run. The
// policy is the same everywhere:
//
//  1. All tasks start at once, each under its own context.
//  2. The first answer starts the grace: Grace.After(rtt) of that answer.
//     A later answer may bring the end of the grace closer (a decisive
//     answer, see Answer), never push it away.
//  3. When the grace ends, every task that has not answered is cancelled
//     (its State is GaveUp); tasks that answered run to their end.
//  4. After every answer and every finished task, Enough (if set) is asked
//     whether the results so far suffice; when they do, every unfinished
//     task is cancelled (NotNeeded).
//  5. Run returns when every task has returned: no goroutine outlives it.
//
// So a dead server costs at most the grace after a live one answered, never
// the caller's whole time limit; with no answer at all, the caller's
// context bounds the run.
package gather

import (
	"context"
	"errors"
	"time"
)

// Grace is how long, after an answer with round trip rtt, servers that
// have not answered yet may still take: Factor round trips, at least Floor
// (scheduling noise, one lost packet's retransmission) and at most
// Ceiling (0: no ceiling).
type Grace struct {
	Factor  float64
	Floor   time.Duration
	Ceiling time.Duration
}

// After is the grace that an answer with round trip rtt grants.
func (g Grace) After(rtt time.Duration) time.Duration {
	d := max(time.Duration(float64(rtt)*g.Factor), g.Floor)
	if g.Ceiling > 0 {
		d = min(d, g.Ceiling)
	}
	return d
}

// The graces natcheck uses, each for a different question.
var (
	// Confirm waits for a second opinion on a public address (whoami):
	// servers at a similar distance (anycast services, two addresses of one
	// host) answer within a quarter of a round trip of each other, and a
	// confirmation is not worth more than 50 ms.
	Confirm = Grace{Factor: 0.25, Floor: 5 * time.Millisecond, Ceiling: 50 * time.Millisecond}
	// Survey waits for every server's own answer (server checks, TCP
	// mapping, lifetime server choice): eight round trips for servers
	// farther away, and at least a second, so one lost packet (or a TCP
	// SYN, retransmitted after 1 s) does not drop a live server.
	Survey = Grace{Factor: 8, Floor: time.Second}
	// AwaitRFC5780 is the type test's wait after a plain server answered
	// first: an RFC 5780 server, often a continent away, still gets eight
	// round trips and at least half a second, since the filtering verdict
	// depends on it.
	AwaitRFC5780 = Grace{Factor: 8, Floor: 500 * time.Millisecond}
	// Corroborate is the type test's wait after an RFC 5780 server
	// answered: the behaviour tests can start, and the others only add
	// corroboration, worth two round trips (at least 50 ms).
	Corroborate = Grace{Factor: 2, Floor: 50 * time.Millisecond}
)

// State is how a task ended.
type State int

const (
	Running   State = iota // not finished yet (seen only by Enough)
	Finished               // ran to its end by itself
	GaveUp                 // still silent when the grace ended: cancelled
	NotNeeded              // cancelled because Enough said the results sufficed
	Stopped                // the caller's context ended first
)

// Errors a caller may record for a task that did not run to its end, so
// that every prober words them alike.
var (
	ErrGaveUp    = errors.New("no answer within the grace period after another server's")
	ErrNotNeeded = errors.New("not waited for: the answers already received sufficed")
)

// Err is ErrGaveUp or ErrNotNeeded for those states, else nil.
func (s State) Err() error {
	switch s {
	case GaveUp:
		return ErrGaveUp
	case NotNeeded:
		return ErrNotNeeded
	}
	return nil
}

// Answer is what a task reports when its server first answered.
type Answer struct {
	RTT time.Duration
	// Decisive marks an answer that gives the caller all it needs (an RFC
	// 5780 server for the type test): the grace is then measured with
	// Options.Decisive, if set, and may end sooner.
	Decisive bool
}

// Task is one server's part of a Run. It runs under ctx, which is
// cancelled when the run gives up on it or no longer needs it, calls
// answered once when its server first answered (possibly long before it
// returns), and returns its value.
type Task[T any] func(ctx context.Context, answered func(Answer)) T

// Result is one task's outcome.
type Result[T any] struct {
	Value    T // the task's return value; zero while Running
	State    State
	Answered bool          // answered was called
	RTT      time.Duration // of that answer
}

// Options set the policy of a Run.
type Options[T any] struct {
	Grace    Grace // after any answer
	Decisive Grace // after a decisive answer; zero means Grace
	// Enough, if set, is asked after every answer and every finished task
	// whether the results so far suffice; rs[i].State is Running for a task
	// still running. It runs on Run's goroutine: it needs no lock.
	Enough func(rs []Result[T]) bool
}

type event[T any] struct {
	i        int
	finished bool
	value    T
	answer   Answer
}

// Run runs the tasks concurrently under the policy in the package doc and
// returns their results, in the tasks' order, once every task returned.
func Run[T any](ctx context.Context, tasks []Task[T], o Options[T]) []Result[T] {
	rs := make([]Result[T], len(tasks))
	cancels := make([]context.CancelFunc, len(tasks))
	events := make(chan event[T], 2*len(tasks)) // one answer, one finish each: sends never block
	for i, task := range tasks {
		tctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		go func() {
			var once bool
			answered := func(a Answer) {
				if !once {
					once = true
					events <- event[T]{i: i, answer: a}
				}
			}
			v := task(tctx, answered)
			events <- event[T]{i: i, finished: true, value: v}
		}()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()

	var graceEnd time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	graceOver, enough := false, false
	cancelWhere := func(state State, pick func(Result[T]) bool) {
		for i := range rs {
			if rs[i].State == Running && pick(rs[i]) {
				rs[i].State = state
				cancels[i]()
			}
		}
	}
	for left := len(tasks); left > 0; {
		select {
		case e := <-events:
			r := &rs[e.i]
			if e.finished {
				left--
				r.Value = e.value
				if r.State == Running {
					r.State = Finished
					if ctx.Err() != nil && !r.Answered {
						r.State = Stopped
					}
				}
			} else {
				r.Answered, r.RTT = true, e.answer.RTT
				if !graceOver {
					g := o.Grace
					if e.answer.Decisive && o.Decisive != (Grace{}) {
						g = o.Decisive
					}
					if end := time.Now().Add(g.After(e.answer.RTT)); graceEnd.IsZero() || end.Before(graceEnd) {
						graceEnd = end
						timer.Reset(time.Until(end))
					}
				}
			}
			if !enough && o.Enough != nil && o.Enough(rs) {
				enough = true
				cancelWhere(NotNeeded, func(Result[T]) bool { return true })
			}
		case <-timer.C:
			graceOver = true
			cancelWhere(GaveUp, func(r Result[T]) bool { return !r.Answered })
		}
	}
	return rs
}

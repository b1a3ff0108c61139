// Package every runs a check again and again on a fixed schedule, for
// `--every` of whoami, type and report, and tells what changed from one
// run to the next. It knows nothing of STUN: a run is a function, and what
// it found is a list of named values (Fact).
//
// Schedule: run k (k = 1, 2, ...) is due at start + (k-1) x interval, so
// runs start every interval however long each takes, and the schedule
// does not drift. A run that ends after the next due time skips the runs
// whose time has passed (as time.Ticker drops ticks): the next run starts
// at the first due time still ahead, and Tick.Seq jumps. Runs never
// overlap.
package every

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Clock is the time Run reads and waits on; nil means the real one. Tests
// pass a clock whose waits return at once.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Tick is one run's place in the schedule.
type Tick struct {
	// Seq is the run's number in the schedule, from 1; it jumps over runs
	// that were skipped because the one before took longer than the
	// interval.
	Seq int
	// Due is when the schedule has the run start, Start when it did.
	Due, Start time.Time
}

// Run calls run every interval until ctx ends (it then returns ctx's
// error) or run returns an error (which Run returns). The first run
// starts at once. ctx is passed to run: its end cancels the run in
// flight, and no run starts after it.
func Run(ctx context.Context, interval time.Duration, clock Clock, run func(context.Context, Tick) error) error {
	if interval <= 0 {
		return fmt.Errorf("every: interval must be positive, got %s", interval)
	}
	if clock == nil {
		clock = realClock{}
	}
	first := clock.Now()
	for slot := 0; ; {
		due := first.Add(time.Duration(slot) * interval)
		if wait := due.Sub(clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-clock.After(wait):
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := run(ctx, Tick{Seq: slot + 1, Due: due, Start: clock.Now()}); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		slot = nextSlot(slot, clock.Now().Sub(first), interval)
	}
}

// nextSlot is the slot after slot whose due time (slot x interval after
// the first) is not yet past at elapsed: the next one, unless the run
// overran it.
func nextSlot(slot int, elapsed, interval time.Duration) int {
	ahead := int((elapsed + interval - 1) / interval) // ceil(elapsed / interval)
	return max(slot+1, ahead)
}

// Fact is one named value a run found, e.g. the public IP. Runs are
// compared fact by fact.
type Fact struct {
	Name  string // for scripts (JSON), e.g. "public_ip" or "server:203.0.113.10"
	Label string // for people, e.g. "public IP"
	// Value is "" when this run could not tell: the fact is then not
	// compared, and the last known value stands.
	Value string
}

// Change is a fact whose value differs from its last known one.
type Change struct {
	Name  string `json:"name"`
	Label string `json:"-"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// String is e.g. "public IP 203.0.113.2 -> 198.51.100.7".
func (c Change) String() string { return c.Label + " " + c.From + " -> " + c.To }

// Describe joins changes for a text line: "a -> b; c -> d".
func Describe(cs []Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// Tracker remembers the last known value of every fact. The zero value is
// ready to use.
type Tracker struct {
	last map[string]string
	seen bool
}

// Observe compares a run's facts with the last known values, in the order
// of facts, and records them. compared is false for the first run, which
// has nothing to be compared with. A fact whose value is "" is skipped: a
// run that could not tell (a server it did not wait for, a failed run's
// public IP) neither changes it nor forgets it, so that an address that
// changed during an outage shows as a change once the answers are back.
func (t *Tracker) Observe(facts []Fact) (changes []Change, compared bool) {
	if t.last == nil {
		t.last = map[string]string{}
	}
	compared = t.seen
	t.seen = true
	changes = []Change{}
	for _, f := range facts {
		if f.Value == "" {
			continue
		}
		if old, ok := t.last[f.Name]; ok && old != f.Value {
			changes = append(changes, Change{Name: f.Name, Label: f.Label, From: old, To: f.Value})
		}
		t.last[f.Name] = f.Value
	}
	return changes, compared
}

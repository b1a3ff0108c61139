// Package progress shows, live on a terminal, which checks are pending, done
// or failed; it writes nothing at all when its output is not a terminal.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Options choose how a Display behaves.
type Options struct {
	Enabled bool // draw at all (false: every method is a no-op)
	Color   bool // use ANSI colours
	// Width cuts lines to the terminal's width: a line that wrapped would
	// take two rows, and redrawing in place would leave fragments. 0 means
	// no limit.
	Width int
}

// ForStderr enables the display only when stderr is a terminal and the user
// did not ask for --quiet, and colour only where NO_COLOR is unset and the
// terminal is not "dumb" (https://no-color.org).
func ForStderr(quiet bool) Options {
	fd := int(os.Stderr.Fd())
	on := !quiet && term.IsTerminal(fd) && os.Getenv("TERM") != "dumb"
	_, noColor := os.LookupEnv("NO_COLOR")
	width := 0
	if w, _, err := term.GetSize(fd); on && err == nil {
		width = w
	}
	return Options{Enabled: on, Color: on && !noColor, Width: width}
}

// State of one check.
type State int

const (
	Pending State = iota
	Done
	Failed
	Skipped
)

// Check is one line of the display.
type Check struct {
	d       *Display
	name    string
	state   State
	note    string
	started time.Time
	took    time.Duration
}

// Display draws the checks' lines in place, redrawing them as they change.
type Display struct {
	w     io.Writer
	opt   Options
	mu    sync.Mutex
	lines int // lines drawn last time, to move back over them
	frame int
	items []*Check
	stop  chan struct{}
	wg    sync.WaitGroup
	now   func() time.Time
}

// spinner frames; plain ASCII so that every terminal font has them.
var spinner = []string{"-", "\\", "|", "/"}

// redrawEvery is fast enough to look alive and slow enough to cost nothing.
const redrawEvery = 100 * time.Millisecond

// New returns a display writing to w. Call Stop when the checks are over.
func New(w io.Writer, opt Options) *Display {
	d := &Display{w: w, opt: opt, stop: make(chan struct{}), now: time.Now}
	if opt.Enabled {
		d.wg.Add(1)
		go d.animate()
	}
	return d
}

// Start adds a pending check.
func (d *Display) Start(name string) *Check {
	c := &Check{d: d, name: name, started: d.now()}
	if !d.opt.Enabled {
		return c
	}
	d.mu.Lock()
	d.items = append(d.items, c)
	d.redrawLocked()
	d.mu.Unlock()
	return c
}

// Done marks the check finished, with a short result.
func (c *Check) Done(note string) { c.finish(Done, note) }

// Fail marks the check failed, with the reason.
func (c *Check) Fail(note string) { c.finish(Failed, note) }

// Skip marks the check as not run, with the reason.
func (c *Check) Skip(note string) { c.finish(Skipped, note) }

func (c *Check) finish(s State, note string) {
	if c == nil || !c.d.opt.Enabled {
		return
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if c.state != Pending {
		return
	}
	c.state, c.note, c.took = s, note, c.d.now().Sub(c.started)
	c.d.redrawLocked()
}

// Stop ends the animation and erases the display, so that the answer on
// stdout is what remains on the screen.
func (d *Display) Stop() {
	if !d.opt.Enabled {
		return
	}
	select {
	case <-d.stop:
		return
	default:
	}
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eraseLocked()
}

func (d *Display) animate() {
	defer d.wg.Done()
	t := time.NewTicker(redrawEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.mu.Lock()
			d.frame++
			d.redrawLocked()
			d.mu.Unlock()
		}
	}
}

func (d *Display) eraseLocked() {
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.lines) // back to the first line
	}
	b.WriteString("\r\x1b[J") // erase from there to the end of the screen
	io.WriteString(d.w, b.String())
	d.lines = 0
}

func (d *Display) redrawLocked() {
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.lines)
	}
	for _, c := range d.items {
		b.WriteString("\r\x1b[2K")
		b.WriteString(d.line(c))
		b.WriteByte('\n')
	}
	d.lines = len(d.items)
	io.WriteString(d.w, b.String())
}

// ANSI colours for each state.
const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	dim    = "\x1b[2m"
	reset  = "\x1b[0m"
)

func (d *Display) line(c *Check) string {
	var mark, color string
	switch c.state {
	case Pending:
		mark, color = spinner[d.frame%len(spinner)], dim
	case Done:
		mark, color = "ok", green
	case Failed:
		mark, color = "!!", red
	case Skipped:
		mark, color = "--", yellow
	}
	text := fmt.Sprintf("%-2s %s", mark, c.name)
	if c.state != Pending {
		text += fmt.Sprintf("  %s (%s)", c.note, c.took.Round(time.Millisecond))
	}
	text = clip(text, d.opt.Width)
	if d.opt.Color {
		return color + text + reset
	}
	return text
}

// clip cuts s to fit in width columns (one left free, so the cursor never
// wraps), marking the cut with "...". Notes are ASCII or close to it, so a
// rune counts as a column.
func clip(s string, width int) string {
	if width <= 0 {
		return s
	}
	r := []rune(s)
	if len(r) < width {
		return s
	}
	if width <= 4 {
		return string(r[:max(width-1, 0)])
	}
	return string(r[:width-4]) + "..."
}

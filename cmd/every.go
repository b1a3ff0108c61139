package cmd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// The shortest --every of each command. whoami sends one request per
// server a run; below a tenth of a second the lines only scroll by. A run
// of the NAT type tests (type, and report's nat-type check) sent 59
// requests to an RFC 5780 server in the lab, most of them to one port,
// and natcheck serve allows a source 50 a second on each port (200 over
// its four): one run every 2 s stays near 30 a second, within that limit
// and polite to public servers. With --runs N
// each scheduled run is N runs, so the least is N times as long.
const (
	minEveryWhoAmI = 100 * time.Millisecond
	minEveryType   = 2 * time.Second
)

// everyFlags is --every.
type everyFlags struct {
	every time.Duration
	min   time.Duration // the command's shortest interval
}

func (f *everyFlags) register(c *cobra.Command, min time.Duration) {
	f.min = min
	c.Flags().DurationVar(&f.every, "every", 0, fmt.Sprintf(
		"repeat the check every `DURATION` (at least %s) until interrupted: one line per run (JSON Lines with --json), marking what changed; see docs/monitoring.md", min))
}

// on reports whether --every was given.
func (f *everyFlags) on() bool { return f.every != 0 }

// check validates --every against the output format and --runs (0 or
// 1: one run each time); every failure is a usage error.
func (f *everyFlags) check(c *cobra.Command, format string, runs int) error {
	if !c.Flags().Changed("every") {
		f.every = 0
		return nil
	}
	least := f.min * time.Duration(max(runs, 1))
	switch {
	case f.every < least && runs > 1:
		return usageError("--every must be at least %s with --runs %d (%s per run), got %s", least, runs, f.min, f.every)
	case f.every < least:
		return usageError("--every must be at least %s, got %s", least, f.every)
	case format == "prometheus":
		return usageError("--every and --format prometheus: the textfile collector reads a file, so run natcheck from a timer or cron job instead (see docs/monitoring.md)")
	case format != "text" && format != "json":
		return usageError("--every prints one line per run, as text or --json, not %s", format)
	}
	return nil
}

// runOutcome is what one run under --every found: its facts, its text
// summary and its JSON document. stop, when set, ends the repetition
// after this run is printed (type --fail-on matched).
type runOutcome struct {
	facts   []every.Fact
	summary string
	doc     any
	stop    error
}

// repeatEvery runs one every f.every until interrupted (or until one's
// outcome says stop), printing each run as a line: text or JSON Lines.
// A run that fails is a line too (its error and the exit code a single
// run would have had), and the repetition goes on: an outage is what a
// watch is for. An interrupt cancels the run in flight, which is not
// printed, so the last line is always whole; it ends with
// ExitInterrupted and a line on stderr counting the runs.
func repeatEvery(ctx context.Context, d *Deps, f everyFlags, asJSON bool, one func(context.Context, every.Tick) (runOutcome, error)) error {
	p := &report.EveryPrinter{Out: d.Out, JSON: asJSON}
	err := every.Run(ctx, f.every, d.Clock, func(ctx context.Context, t every.Tick) error {
		o, err := one(ctx, t)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			o = runOutcome{}
			o.facts, o.summary, o.doc = report.FailedRun(err, exitCode(ctx, err))
		}
		if err := p.Print(t.Seq, t.Start, o.facts, o.summary, o.doc); err != nil {
			return err
		}
		return o.stop
	})
	if ctx.Err() != nil {
		return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted after %d %s, %d with a change",
			p.Runs, plural(p.Runs, "run", "runs"), p.Changed)}
	}
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// registerFormat adds --format with the formats a command writes; --json
// stays its short form for json.
func registerFormat(c *cobra.Command, format *string, formats ...string) {
	c.Flags().StringVar(format, "format", "text", "output format: "+strings.Join(formats, ", "))
}

// outputFormat is the format asked for by --format and --json: one of
// formats, or a usage error.
func outputFormat(c *cobra.Command, asJSON bool, format string, formats ...string) (string, error) {
	if asJSON && c.Flags().Changed("format") && format != "json" {
		return "", usageError("--json and --format %s ask for two formats", format)
	}
	if asJSON {
		format = "json"
	}
	if !slices.Contains(formats, format) {
		return "", usageError("--format must be one of %s, got %q", strings.Join(formats, ", "), format)
	}
	return format, nil
}

// promRun starts the record of a run for --format prometheus.
func promRun(command string) func() report.PromRun {
	start := time.Now()
	return func() report.PromRun {
		return report.PromRun{Command: command, At: start, Elapsed: time.Since(start)}
	}
}

package cmd

import (
	"context"
	"os"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/natcheck/natcheck/progress"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// reportTimeout is the default bound of a report: every check runs at once,
// so this is the slowest check's worst case (a silent gateway, a far
// RFC 5780 server), not a sum.
const reportTimeout = 5 * time.Second

type reportOptions struct {
	flags       probeFlags
	format      string
	quiet       bool
	lifetime    bool
	lifetimeMax time.Duration
	noPortmap   bool
	runs        int
	every       everyFlags
	turn        turnFlags
	run         func(context.Context, diagnose.Options) (*diagnose.Result, error)
	now         func() time.Time
}

func newReportCmd(d *Deps) *cobra.Command {
	return newReportCmdWith(d, diagnose.Run)
}

// newReportCmdWith lets tests replace the checks.
func newReportCmdWith(d *Deps, run func(context.Context, diagnose.Options) (*diagnose.Result, error)) *cobra.Command {
	o := &reportOptions{run: run, now: time.Now}
	c := &cobra.Command{
		Use:   "report",
		Short: "Run every check at once and write the diagnosis a support ticket needs",
		Long: `report runs every natcheck check in parallel and writes one document:
the NAT type (mapping, filtering, hairpinning, carrier NAT, ALG), the
gateway's port mapping (UPnP IGD, NAT-PMP, PCP; the test mapping is deleted
again, also on Ctrl-C) and double NAT, IPv6 (routed or translated), STUN
over TCP, each STUN server's round trip and RFC 5780 support, and the
host's interfaces and default route. --lifetime adds how long the NAT
keeps an idle UDP mapping (up to --lifetime-max more).

Every check has the same --timeout; one that cannot finish in time says so
in the report instead of holding the others up. On a terminal, stderr
shows which checks are pending, done or failed (not with --quiet, nor when
stderr is not a terminal; colour honours NO_COLOR).

--runs N repeats the NAT type tests N times (as natcheck type --runs; the
check then has N times --timeout and the pauses); --bind IP[:PORT] runs the NAT type and
TCP checks from that IPv4 address of this host (the other checks choose
their own sockets).

The report is printed whatever the checks found (exit 0); a check that
failed, e.g. because no STUN server answered, says why in the report.

--every DURATION (at least 2s) repeats the report until interrupted, one
line per run (JSON Lines with --json), marking what changed; --format
prometheus writes every check's findings as metrics for node_exporter's
textfile collector. See docs/monitoring.md.`,
		Example: `  natcheck report
  natcheck report --format markdown > natcheck-report.md
  natcheck report --json | jq '{type, port_mapping: .port_mapping.upnp.supported}'
  natcheck report --lifetime --lifetime-max 3m
  natcheck report --runs 5 --bind 192.168.1.2
  natcheck report --every 1h --json --no-portmap >> natcheck.jsonl
  natcheck report --format prometheus --no-portmap > natcheck-report.prom`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkRuns(c, &o.runs); err != nil {
				return err
			}
			format, err := outputFormat(c, o.flags.json, o.format, "text", "json", "markdown", "prometheus")
			if err != nil {
				return err
			}
			if err := o.every.check(c, format, o.runs); err != nil {
				return err
			}
			return runReport(c.Context(), d, o, format)
		},
	}
	o.flags.register(c)
	o.flags.registerBind(c)
	registerRuns(c, &o.runs)
	o.flags.timeout = reportTimeout
	c.Flags().Lookup("timeout").DefValue = reportTimeout.String()
	hideFamily(c) // report checks both families itself
	f := c.Flags()
	registerFormat(c, &o.format, "text", "json", "markdown", "prometheus")
	o.every.register(c, minEveryType)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress display on stderr")
	f.BoolVar(&o.lifetime, "lifetime", false, "also measure how long an idle UDP mapping survives (takes up to --lifetime-max)")
	f.DurationVar(&o.lifetimeMax, "lifetime-max", lifetime.DefaultMax, "longest idle time the lifetime measurement probes")
	o.turn.register(c, "turn", "")
	f.BoolVar(&o.noPortmap, "no-portmap", false, "skip the gateway's port-mapping test (it briefly creates a mapping)")
	return c
}

func runReport(parent context.Context, d *Deps, o *reportOptions, format string) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	if o.flags.ipv6 {
		return usageError("report checks IPv4 and IPv6 itself; -6 does not apply")
	}
	if r.bind.IsValid() && r.bind.Addr().Is6() {
		return usageError("--bind %s: report's NAT type and TCP checks run over IPv4, so --bind needs an IPv4 address", r.bind.Addr())
	}
	if err := checkLifetimeMax(o.lifetime, o.lifetimeMax); err != nil {
		return err
	}
	var turnServers []turncheck.URI
	var turnOpts turncheck.Options
	if len(o.turn.servers) > 0 {
		if turnServers, turnOpts, err = o.turn.options(d, time.Now()); err != nil {
			return err
		}
	}
	opts := diagnose.Options{
		Servers: r.servers, Resolver: r.resolver, Timeout: r.timeout, Lifetime: o.lifetime, LifetimeMax: o.lifetimeMax,
		NoPortmap: o.noPortmap, Runs: o.runs, Bind: r.bind, Turn: turnServers, TurnOptions: turnOpts,
	}
	if o.every.on() {
		// The lines are the progress: no live display between them.
		return repeatEvery(parent, d, o.every, format == "json", func(ctx context.Context, t every.Tick) (runOutcome, error) {
			res, err := o.run(ctx, opts)
			if err != nil {
				return runOutcome{}, runError(ctx, err)
			}
			in := report.FullInput{Result: res, Servers: r.servers, Version: readVersion().Version, At: t.Start}
			return runOutcome{facts: report.FullFacts(in), summary: report.FullSummary(in), doc: report.NewFullJSON(in)}, nil
		})
	}
	progressOpts := progress.Options{}
	if d.ErrOut == os.Stderr {
		progressOpts = progress.ForStderr(o.quiet)
	}
	display := progress.New(d.ErrOut, progressOpts)
	opts.Start = func(name diagnose.CheckName) diagnose.Step { return display.Start(string(name)) }
	started := o.now()
	res, err := o.run(parent, opts)
	display.Stop()
	if err != nil {
		return runError(parent, err)
	}
	in := report.FullInput{Result: res, Servers: r.servers, Version: readVersion().Version, At: started}
	switch format {
	case "json":
		return report.WriteJSON(d.Out, report.NewFullJSON(in))
	case "markdown":
		return report.FullMarkdown(d.Out, in, o.flags.verbose)
	case "prometheus":
		return report.FullPrometheus(d.Out, in)
	default:
		return report.FullText(d.Out, in, o.flags.verbose)
	}
}

// checkLifetimeMax refuses a --lifetime-max below the shortest idle time
// the measurement probes: it could only ever say "not measured".
func checkLifetimeMax(on bool, max time.Duration) error {
	if on && max < lifetime.DefaultMin {
		return usageError("--lifetime-max must be at least %s, got %s", lifetime.DefaultMin, max)
	}
	return nil
}

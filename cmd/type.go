package cmd

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// typeOptions is everything `natcheck type` needs to run.
type typeOptions struct {
	flags       probeFlags
	failOn      []string
	lifetime    bool
	lifetimeMax time.Duration
	runs        int
	format      string
	every       everyFlags
	run         func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)
	measure     func(context.Context, lifetime.Options) (*lifetime.Result, error)
}

func newTypeCmd(d *Deps) *cobra.Command { return newTypeCmdWith(d, probe.RunType) }

// newTypeCmdWith lets tests replace the probe run.
func newTypeCmdWith(d *Deps, run func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)) *cobra.Command {
	o := &typeOptions{run: run, measure: lifetime.Measure}
	c := &cobra.Command{
		Use:   "type",
		Short: "Tell what kind of NAT or firewall this host is behind",
		Long: `type runs the RFC 5780 NAT behaviour tests concurrently, each from its own
socket, and names the result: open-internet, full-cone, restricted-cone,
port-restricted-cone, symmetric, symmetric-udp-firewall, udp-blocked or
unknown, with the RFC 4787 mapping and filtering behaviour behind it, port
preservation, hairpinning, carrier-grade NAT and ALG findings, and what it
means for peer-to-peer connections. A test that cannot decide says unknown.

--lifetime also measures how long the NAT keeps an idle UDP mapping (many
mappings idle for different times at once; it takes about the lifetime
itself, at most --lifetime-max), so it is never part of a default run.

Filtering needs a server with RFC 5780 support (a second IP and port); with
plain servers only, mapping comes from comparing two servers on different
IPs and filtering is unknown. See docs/nat-types.md.

--runs N repeats the tests N times, one after another, each from fresh
sockets and with its own --timeout, 250 ms apart (1 s after the fifth run,
to stay within servers' rate limits). The verdict is the one
more than half of the runs found, with its agreement on the first line
("..., 5 of 5 runs"); when runs disagree, each run's verdict and what
differed follow. Without such a majority (a tie included) the type is
unknown. --fail-on applies to the majority verdict.

--bind IP[:PORT] tests from that address of this host: every socket uses
the IP, and the mapping socket uses PORT; the filtering, verify, hairpin
and TTL tests need sockets of their own on other ports (-v and --json list
every local socket).

--every DURATION (at least 2s, N times that with --runs N) repeats the
tests until interrupted, one line per run (JSON Lines with --json), and
marks a run whose type, mapping, filtering or public IP changed; with
--fail-on it ends at the first run that matches. --format prometheus
writes metrics for node_exporter's textfile collector. See
docs/monitoring.md.`,
		Example: `  natcheck type
  natcheck type -s stun.example.net -s 203.0.113.10:3478 --json | jq -r .type
  natcheck type --fail-on symmetric,udp-blocked || echo "a relay will be needed"
  natcheck type --lifetime --lifetime-max 90s
  natcheck type --runs 5
  natcheck type --bind 192.168.1.2:40000 -v
  natcheck type --every 10m --fail-on symmetric
  natcheck type --format prometheus > natcheck-type.prom`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkRuns(c, &o.runs); err != nil {
				return err
			}
			format, err := outputFormat(c, o.flags.json, o.format, "text", "json", "prometheus")
			if err != nil {
				return err
			}
			if err := o.every.check(c, format, o.runs); err != nil {
				return err
			}
			return runType(c.Context(), d, o, format)
		},
	}
	o.flags.register(c)
	o.flags.registerBind(c)
	registerRuns(c, &o.runs)
	c.Flags().StringSliceVar(&o.failOn, "fail-on", nil,
		"exit with status 4 when the type is one of these (comma separated: "+typeNames()+")")
	c.Flags().BoolVar(&o.lifetime, "lifetime", false, "also measure the idle UDP mapping lifetime (takes up to --lifetime-max)")
	c.Flags().DurationVar(&o.lifetimeMax, "lifetime-max", lifetime.DefaultMax, "longest idle time --lifetime probes")
	registerFormat(c, &o.format, "text", "json", "prometheus")
	o.every.register(c, minEveryType)
	return c
}

// registerRuns adds --runs to type and report.
func registerRuns(c *cobra.Command, runs *int) {
	c.Flags().IntVar(runs, "runs", 1, fmt.Sprintf(
		"run the NAT type tests N times (fresh sockets, %v apart, %v after the fifth run; --timeout each) and give the majority verdict with its agreement",
		diagnose.RunPause, diagnose.LongRunPause))
}

// checkRuns refuses a --runs outside 1..diagnose.MaxRuns. Without --runs
// it sets 0: one run, without the record of runs in the output.
func checkRuns(c *cobra.Command, n *int) error {
	if !c.Flags().Changed("runs") {
		*n = 0
		return nil
	}
	if *n < 1 || *n > diagnose.MaxRuns {
		return usageError("--runs must be between 1 and %d, got %d", diagnose.MaxRuns, *n)
	}
	return nil
}

// typeNames lists nat.Types as --fail-on takes them.
func typeNames() string {
	names := make([]string, len(nat.Types))
	for i, t := range nat.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func runType(parent context.Context, d *Deps, o *typeOptions, format string) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	if err := checkLifetimeMax(o.lifetime, o.lifetimeMax); err != nil {
		return err
	}
	for _, f := range o.failOn {
		if !slices.Contains(nat.Types, nat.NATType(f)) {
			return usageError("--fail-on: unknown type %q (one of %s)", f, typeNames())
		}
	}
	opts := diagnose.TypeOptions{Servers: r.servers, Family: r.family, Resolver: r.resolver, Timeout: r.timeout,
		Lifetime: o.lifetime, LifetimeMax: o.lifetimeMax, RunType: o.run, MeasureLifetime: o.measure,
		Runs: o.runs, Bind: r.bind}
	if o.flags.verbose {
		opts.Logf = verboseLogger(d, "type")
	}
	if o.every.on() {
		return repeatEvery(parent, d, o.every, format == "json", func(ctx context.Context, _ every.Tick) (runOutcome, error) {
			t, err := o.test(ctx, r, opts)
			if err != nil {
				return runOutcome{}, err
			}
			return runOutcome{facts: report.TypeFacts(t.Type), summary: report.TypeSummary(t.Type, t.Runs),
				doc: o.jsonDoc(r, t), stop: o.failed(t.Type)}, nil
		})
	}
	run := promRun("type")
	t, err := o.test(parent, r, opts)
	switch {
	case format == "prometheus" && parent.Err() == nil:
		// The metrics are the answer either way: a failed run is a 0
		// (an interrupted one is no finding, and writes nothing).
		var res *probe.TypeResult
		if t != nil {
			res = t.Type
		}
		if perr := report.TypePrometheus(d.Out, run(), r.family, res, t.runs(), t.lifetime()); perr != nil || err != nil {
			return cmp.Or(perr, err)
		}
	case err != nil:
		return err
	case format == "json":
		err = report.WriteJSON(d.Out, o.jsonDoc(r, t))
	default:
		err = report.TypeRunsText(d.Out, t.Type, t.Runs, o.flags.verbose)
		if err == nil && o.lifetime {
			err = report.LifetimeOrError(d.Out, t.Lifetime, t.LifetimeErr, o.flags.verbose)
		}
	}
	if err != nil {
		return err
	}
	return o.failed(t.Type)
}

// test runs the NAT type tests once (with --runs, that many times) and,
// with --lifetime, the measurement; the error is the command's.
func (o *typeOptions) test(parent context.Context, r resolved, opts diagnose.TypeOptions) (*typeRun, error) {
	r.start = time.Now()
	t, err := diagnose.Type(parent, opts)
	if err != nil {
		return nil, r.runError(parent, err)
	}
	return (*typeRun)(t), nil
}

// typeRun is a run of the tests; its methods read a nil run as none.
type typeRun diagnose.TypeResult

func (t *typeRun) runs() *diagnose.Runs {
	if t == nil {
		return nil
	}
	return t.Runs
}

func (t *typeRun) lifetime() *lifetime.Result {
	if t == nil {
		return nil
	}
	return t.Lifetime
}

// jsonDoc is type's --json document.
func (o *typeOptions) jsonDoc(r resolved, t *typeRun) any {
	if o.lifetime {
		j := report.NewTypeWithLifetimeJSON(r.family, t.Type, t.Lifetime, t.LifetimeErr)
		j.AddRuns(t.Runs)
		return j
	}
	j := report.NewTypeJSON(r.family, t.Type)
	j.AddRuns(t.Runs)
	return j
}

// failed is the error --fail-on asks for when res's type is one of its
// types, or nil.
func (o *typeOptions) failed(res *probe.TypeResult) error {
	if slices.Contains(o.failOn, string(res.Type)) {
		return &ExitError{Code: ExitVerdict, Err: fmt.Errorf("type %s matched --fail-on", res.Type)}
	}
	return nil
}

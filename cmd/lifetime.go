package cmd

import (
	"context"
	"time"

	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// lifetimeOptions is everything `natcheck lifetime` needs to run.
type lifetimeOptions struct {
	flags   probeFlags
	min     time.Duration
	max     time.Duration
	sockets int
	rounds  int
	estab   bool
	run     func(context.Context, lifetime.Options) (*lifetime.Result, error)
}

func newLifetimeCmd(d *Deps) *cobra.Command { return newLifetimeCmdWith(d, lifetime.Measure) }

// newLifetimeCmdWith lets tests replace the probe run.
func newLifetimeCmdWith(d *Deps, run func(context.Context, lifetime.Options) (*lifetime.Result, error)) *cobra.Command {
	o := &lifetimeOptions{run: run}
	c := &cobra.Command{
		Use:   "lifetime",
		Short: "Measure how long the NAT keeps an idle UDP mapping",
		Long: `lifetime measures how long an idle UDP mapping survives in the NAT, which
tells how often a peer-to-peer application must send keepalives.

Many sockets each open a mapping with one STUN server at once, then stay
silent for different times (spaced geometrically between --min and --max).
When a socket's time is up, a fresh socket asks the server to answer to the
idle socket's mapping (RFC 5780 RESPONSE-PORT): if the answer arrives, the
mapping was alive. The round stops as soon as two mappings have expired, so
a run takes about as long as the lifetime itself (at most --max); each
further --rounds narrows the bounds and costs about that long again.

By default each mapping sees one request and its reply before idling, as a
freshly gathered candidate does; --established exchanges twice, 2.5 s
apart, as a flow in use does (Linux routers keep such flows for
nf_conntrack_udp_timeout_stream, 120-180 s, instead of 30 s).

The server should support RFC 5780 RESPONSE-PORT (natcheck serve and
coturn with two listening addresses do); servers are checked in the order
given and the first that does is used. Without one, a NAT that changes
ports still shows expiry (the idle socket asks again and gets a new port);
behind a NAT that keeps ports the answer is then "unknown".

--timeout, when given, bounds the whole run; otherwise the run may take
--rounds times --max, plus --timeout for the server check.`,
		Example: `  natcheck lifetime -s stun.example.net
  natcheck lifetime --max 5m --rounds 2 -s 203.0.113.10
  natcheck lifetime --json -s 203.0.113.10 | jq .estimate_ms`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runLifetime(c.Context(), d, o, c.Flags().Changed("timeout"))
		},
	}
	o.flags.register(c)
	fl := c.Flags()
	fl.DurationVar(&o.min, "min", lifetime.DefaultMin, "shortest idle time probed")
	fl.DurationVar(&o.max, "max", lifetime.DefaultMax, "longest idle time probed; bounds the run's length")
	fl.IntVar(&o.sockets, "sockets", lifetime.DefaultSockets, "mappings probed in parallel per round (2-256)")
	fl.IntVar(&o.rounds, "rounds", 1, "rounds; each after the first narrows the bounds")
	fl.BoolVar(&o.estab, "established", false, "exchange twice, 2.5 s apart, before idling (a flow in use; NATs may keep it longer)")
	return c
}

func runLifetime(parent context.Context, d *Deps, o *lifetimeOptions, timeoutGiven bool) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	switch {
	case o.min <= 0 || o.max <= 0:
		return usageError("--min and --max must be positive")
	case o.max < o.min:
		return usageError("--max (%s) is below --min (%s)", o.max, o.min)
	case o.sockets < 2 || o.sockets > 256:
		return usageError("--sockets must be 2-256, got %d", o.sockets)
	case o.rounds < 1 || o.rounds > 10:
		return usageError("--rounds must be 1-10, got %d", o.rounds)
	}
	budget := r.timeout
	if !timeoutGiven {
		budget += time.Duration(o.rounds) * (o.max + r.timeout)
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()
	po := lifetime.Options{Servers: r.servers, Family: r.family, Resolver: r.resolver, Min: o.min, Max: o.max,
		Sockets: o.sockets, Rounds: o.rounds, Established: o.estab}
	if o.flags.verbose {
		po.Logf = verboseLogger(d, "lifetime")
	}
	l, err := o.run(ctx, po)
	if err != nil {
		return runError(parent, err)
	}
	if o.flags.json {
		return report.WriteJSON(d.Out, report.NewLifetimeJSON(l))
	}
	return report.LifetimeText(d.Out, l, o.flags.verbose)
}

package cmd

import (
	"context"
	"time"

	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// whoamiOptions is everything `natcheck whoami` needs to run.
type whoamiOptions struct {
	flags  probeFlags
	format string
	every  everyFlags
	run    func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)
}

func newWhoAmICmd(d *Deps) *cobra.Command { return newWhoAmICmdWith(d, probe.RunWhoAmI) }

// newWhoAmICmdWith lets tests replace the probe run.
func newWhoAmICmdWith(d *Deps, run func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)) *cobra.Command {
	o := &whoamiOptions{run: run}
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Print the public IP address this host appears from",
		Long: `whoami asks several STUN servers at once which address this host's packets
come from, and prints the public IP as soon as two servers agree (or the
others have had a quarter of a round trip to confirm it): a dead server
never costs a timeout.

Plain output is the public IP alone, for scripts; --verbose adds the port,
the local address, whether the host is behind NAT and each server's answer.
--bind IP[:PORT] asks from that address (and port) of this host.

--every DURATION asks again every DURATION until interrupted, one line per
run (JSON Lines with --json), and marks a run whose public IP, NAT,
servers' agreement or server reachability changed. --format prometheus
writes metrics for node_exporter's textfile collector, also when no server
answered (then with natcheck_success 0, and exit 3). See
docs/monitoring.md.`,
		Example: `  natcheck whoami
  ip=$(natcheck whoami) || echo "no STUN answer"
  natcheck whoami -6 --verbose
  natcheck whoami -s stun:stun.example.net -s 203.0.113.10:3478 --json | jq .nat
  NATCHECK_SERVERS=stun1.example.net,stun2.example.net natcheck whoami
  natcheck whoami --bind 192.168.1.2:40000 -v
  natcheck whoami --every 1m
  natcheck whoami --format prometheus > natcheck-whoami.prom`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			format, err := outputFormat(c, o.flags.json, o.format, "text", "json", "prometheus")
			if err != nil {
				return err
			}
			if err := o.every.check(c, format, 1); err != nil {
				return err
			}
			return runWhoAmI(c.Context(), d, o, format)
		},
	}
	o.flags.register(c)
	o.flags.registerBind(c)
	registerFormat(c, &o.format, "text", "json", "prometheus")
	o.every.register(c, minEveryWhoAmI)
	return c
}

func runWhoAmI(parent context.Context, d *Deps, o *whoamiOptions, format string) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	if o.every.on() {
		return repeatEvery(parent, d, o.every, format == "json", func(ctx context.Context, _ every.Tick) (runOutcome, error) {
			w, err := o.ask(ctx, r)
			if err != nil {
				return runOutcome{}, err
			}
			return runOutcome{facts: report.WhoAmIFacts(w), summary: report.WhoAmISummary(w), doc: report.NewWhoAmIJSON(w)}, nil
		})
	}
	run := promRun("whoami")
	w, err := o.ask(parent, r)
	switch {
	case format == "prometheus" && parent.Err() == nil:
		// The metrics are the answer either way: a failed run is a 0
		// (an interrupted one is no finding, and writes nothing).
		if perr := report.WhoAmIPrometheus(d.Out, run(), r.family, w); perr != nil {
			return perr
		}
		return err
	case err != nil:
		return err
	case format == "json":
		return report.WriteJSON(d.Out, report.NewWhoAmIJSON(w))
	}
	return report.WhoAmIText(d.Out, w, o.flags.verbose)
}

// ask runs whoami once under --timeout; the error is the command's (exit
// code and message). w is nil when it fails.
func (o *whoamiOptions) ask(parent context.Context, r resolved) (*probe.WhoAmI, error) {
	r.start = time.Now()
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	w, err := o.run(ctx, probe.WhoAmIOptions{Servers: r.servers, Family: r.family, Resolver: r.resolver, Bind: r.bind})
	if err != nil {
		return nil, r.runError(parent, err)
	}
	return w, nil
}

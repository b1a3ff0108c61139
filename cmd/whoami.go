package cmd

import (
	"context"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// whoamiOptions is everything `natcheck whoami` needs to run.
type whoamiOptions struct {
	flags probeFlags
	run   func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)
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
--bind IP[:PORT] asks from that address (and port) of this host.`,
		Example: `  natcheck whoami
  ip=$(natcheck whoami) || echo "no STUN answer"
  natcheck whoami -6 --verbose
  natcheck whoami -s stun:stun.example.net -s 203.0.113.10:3478 --json | jq .nat
  NATCHECK_SERVERS=stun1.example.net,stun2.example.net natcheck whoami
  natcheck whoami --bind 192.168.1.2:40000 -v`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runWhoAmI(c.Context(), d, o)
		},
	}
	o.flags.register(c)
	o.flags.registerBind(c)
	return c
}

func runWhoAmI(parent context.Context, d *Deps, o *whoamiOptions) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	w, err := o.run(ctx, probe.WhoAmIOptions{Servers: r.servers, Family: r.family, Resolver: r.resolver, Bind: r.bind})
	if err != nil {
		return r.runError(parent, err)
	}
	if o.flags.json {
		return report.WriteJSON(d.Out, report.NewWhoAmIJSON(w))
	}
	return report.WhoAmIText(d.Out, w, o.flags.verbose)
}

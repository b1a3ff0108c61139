package cmd

import (
	"context"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

type serversOptions struct {
	flags probeFlags
	probe bool
	check func(context.Context, stunclient.Family, []stunclient.Server) []probe.ServerCheck
}

func newServersCmd(d *Deps) *cobra.Command {
	return newServersCmdWith(d, func(ctx context.Context, f stunclient.Family, ss []stunclient.Server) []probe.ServerCheck {
		return probe.CheckServers(ctx, nil, d.Resolver, f, ss)
	})
}

// newServersCmdWith lets tests replace the probing.
func newServersCmdWith(d *Deps, check func(context.Context, stunclient.Family, []stunclient.Server) []probe.ServerCheck) *cobra.Command {
	o := &serversOptions{check: check}
	c := &cobra.Command{
		Use:   "servers",
		Short: "List the STUN servers natcheck uses and, with --probe, test each",
		Long: `servers lists the STUN servers natcheck would ask: those given with
--server, else $NATCHECK_SERVERS, else the built-in list.

With --probe it asks every server at once for a Binding and reports whether
it answered, its round-trip time, and its RFC 5780 support: "verified" when
a CHANGE-REQUEST reply really came from its OTHER-ADDRESS, "advertised"
when it names a valid OTHER-ADDRESS that could not be proven from here,
"invalid" when its OTHER-ADDRESS has no second IP and port or a changed
reply came from the wrong place, "absent" when it answered without one,
"unknown" when it did not answer. Once one server has answered, the others
get a grace of 8 round trips (at least 1 s). Public servers' RFC
5780 support comes and goes, so natcheck never assumes it.`,
		Example: `  natcheck servers
  natcheck servers --probe
  natcheck servers --probe --json | jq -r '.servers[] | select(.rfc5780 == "verified") | .server'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runServers(c.Context(), d, o)
		},
	}
	o.flags.register(c)
	c.Flags().BoolVar(&o.probe, "probe", false, "ask each server: reachability, RTT, RFC 5780 support")
	return c
}

func runServers(parent context.Context, d *Deps, o *serversOptions) error {
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	var checks []probe.ServerCheck
	if o.probe {
		ctx, cancel := context.WithTimeout(parent, r.timeout)
		checks = o.check(ctx, r.family, r.servers)
		cancel()
		if parent.Err() != nil {
			return runError(parent, parent.Err())
		}
	}
	if o.flags.json {
		return report.WriteJSON(d.Out, report.NewServersJSON(r.family, r.servers, checks))
	}
	return report.ServersText(d.Out, r.servers, checks)
}

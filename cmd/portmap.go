package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// portmapOptions is everything `natcheck portmap` needs to run.
type portmapOptions struct {
	flags  probeFlags
	noSTUN bool
	hold   time.Duration
	check  func(context.Context, portmap.Options) (*portmap.Report, error)
	whoami func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)
}

func newPortmapCmd(d *Deps) *cobra.Command {
	return newPortmapCmdWith(d, portmap.Check, probe.RunWhoAmI)
}

// newPortmapCmdWith lets tests replace the gateway check and the STUN run.
func newPortmapCmdWith(d *Deps, check func(context.Context, portmap.Options) (*portmap.Report, error),
	whoami func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)) *cobra.Command {
	o := &portmapOptions{check: check, whoami: whoami}
	c := &cobra.Command{
		Use:   "portmap",
		Short: "Test the gateway's port mapping (UPnP IGD, NAT-PMP, PCP) and detect double NAT",
		Long: `portmap asks the default gateway, with UPnP IGD, NAT-PMP and PCP at once,
for its external address and for a UDP mapping to a socket of its own, and
deletes that mapping again at once (also on Ctrl-C; the mapping's lifetime
is 60 s, so even a crash leaves it for a minute at most).

A gateway without a protocol refuses at once (ICMP port unreachable); one
that drops silently costs at most a second. At the same time a STUN server
is asked for the public address: a gateway whose external address is
private or shared (100.64.0.0/10) or differs from it sits behind another
NAT (double NAT). --no-stun skips that comparison.

The first line of text output is the verdict; see docs/portmap.md for the
JSON fields.`,
		Example: `  natcheck portmap
  natcheck portmap --json | jq .upnp.supported
  natcheck portmap --no-stun --timeout 1s`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runPortmap(c.Context(), d, o)
		},
	}
	o.flags.register(c)
	hideFamily(c) // the gateway's port mapping is IPv4; STUN here is IPv4 too
	c.Flags().BoolVar(&o.noSTUN, "no-stun", false, "do not ask a STUN server (no double-NAT comparison)")
	c.Flags().DurationVar(&o.hold, "hold", 0, "keep the test mappings this long before deleting them (to look at them on the router)")
	return c
}

func runPortmap(parent context.Context, d *Deps, o *portmapOptions) error {
	if o.flags.ipv6 {
		return usageError("portmap checks the gateway's IPv4 port mapping; -6 does not apply")
	}
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	if r.family != stunclient.IPv4 {
		return usageError("portmap tests the IPv4 gateway only; -6 is not supported")
	}
	if o.hold < 0 {
		return usageError("--hold must not be negative, got %s", o.hold)
	}
	res, err := diagnose.Portmap(parent, diagnose.PortmapOptions{Servers: r.servers, Resolver: r.resolver, Timeout: r.timeout,
		Hold: o.hold, NoSTUN: o.noSTUN, Check: o.check, WhoAmI: o.whoami})
	if parent.Err() != nil {
		return &ExitError{Code: ExitInterrupted, Err: errors.New(interruptedMessage(res.Report))}
	}
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("portmap: %w", err)}
	}
	in := report.PortmapInput{Report: res.Report, STUNMapped: res.STUNMapped, STUNErr: res.STUNErr, Elapsed: res.Elapsed}
	if o.flags.json {
		return report.WriteJSON(d.Out, report.NewPortmapJSON(in))
	}
	return report.PortmapText(d.Out, in, o.flags.verbose)
}

// interruptedMessage says whether every test mapping was deleted: Check
// deletes them before returning, but a gateway may not confirm in time.
func interruptedMessage(rep *portmap.Report) string {
	deleted := false
	if rep != nil {
		for _, r := range rep.Results {
			if r.MappingAdded == tri.Yes && r.MappingDeleted != tri.Yes {
				return fmt.Sprintf("interrupted; the %s test mapping's deletion was not confirmed (it expires within %s)",
					r.Protocol, r.Lifetime)
			}
			deleted = deleted || r.MappingDeleted == tri.Yes
		}
	}
	if deleted {
		return "interrupted; test mappings deleted"
	}
	return "interrupted; no test mapping was left"
}

package cmd

import (
	"context"
	"errors"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

func newIPv6Cmd(d *Deps) *cobra.Command {
	var f probeFlags
	c := &cobra.Command{
		Use:   "ipv6",
		Short: "Check IPv6: the host's addresses, STUN over IPv6, routed or translated",
		Long: `ipv6 lists this host's global and unique local IPv6 addresses, asks the STUN
servers over IPv6 which address they see, and tells whether the IPv6 path is
routed (the servers see one of this host's own addresses) or translated by
NAT66 or NPTv6 (they see another one).

When no server answers over IPv6 the answer says why (no IPv6 address on a
server, no route, or silence) and the exit code is 3.`,
		Example: `  natcheck ipv6
  natcheck ipv6 --json | jq .path
  natcheck ipv6 -v -s stun.example.net`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runIPv6(c.Context(), d, &f)
		},
	}
	f.register(c)
	hideFamily(c) // IPv6 by definition
	c.Flags().MarkHidden("ipv4")
	c.Flags().MarkHidden("ipv6")
	return c
}

func runIPv6(parent context.Context, d *Deps, f *probeFlags) error {
	if f.ipv4 {
		return usageError("ipv6 checks IPv6; -4 does not apply")
	}
	r, err := f.resolve(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	c, err := probe.CheckIPv6(ctx, probe.IPv6Options{Servers: r.servers, Resolver: r.resolver})
	if err != nil || parent.Err() != nil {
		// An interrupted check still returns what it saw: say interrupted.
		return r.runError(parent, err)
	}
	if f.json {
		err = report.WriteJSON(d.Out, report.NewIPv6JSON(c))
	} else {
		err = report.IPv6Text(d.Out, c, f.verbose)
	}
	if err != nil || c.STUN == probe.IPv6Works {
		return err
	}
	return &ExitError{Code: ExitNoAnswer, Err: errors.New("no STUN server answered over IPv6" + r.timeoutTooShort())}
}

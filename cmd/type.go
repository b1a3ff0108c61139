package cmd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

func init() { register(newTypeCmd) }

// typeOptions is everything `natcheck type` needs to run.
type typeOptions struct {
	flags  probeFlags
	failOn []string
	run    func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)
}

func newTypeCmd(s *Streams) *cobra.Command { return newTypeCmdWith(s, probe.RunType) }

// newTypeCmdWith lets tests replace the probe run.
func newTypeCmdWith(s *Streams, run func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)) *cobra.Command {
	o := &typeOptions{run: run}
	c := &cobra.Command{
		Use:   "type",
		Short: "Tell what kind of NAT or firewall this host is behind",
		Long: `type runs the RFC 5780 NAT behaviour tests concurrently, each from its own
socket, and names the result: open-internet, full-cone, restricted-cone,
port-restricted-cone, symmetric, symmetric-udp-firewall, udp-blocked or
unknown, with the RFC 4787 mapping and filtering behaviour behind it, port
preservation, hairpinning, carrier-grade NAT and ALG findings, and what it
means for peer-to-peer connections. A test that cannot decide says unknown.

Filtering needs a server with RFC 5780 support (a second IP and port); with
plain servers only, mapping comes from comparing two servers on different
IPs and filtering is unknown. See docs/nat-types.md.`,
		Example: `  natcheck type
  natcheck type -s stun.example.net -s 203.0.113.10:3478 --json | jq -r .type
  natcheck type --fail-on symmetric,udp-blocked || echo "a relay will be needed"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runType(c.Context(), s, o)
		},
	}
	o.flags.register(c)
	c.Flags().StringSliceVar(&o.failOn, "fail-on", nil,
		"exit with status 4 when the type is one of these (comma separated: "+strings.Join(probe.Types, ", ")+")")
	return c
}

func runType(parent context.Context, s *Streams, o *typeOptions) error {
	r, err := o.flags.resolve(getenv)
	if err != nil {
		return err
	}
	for _, f := range o.failOn {
		if !slices.Contains(probe.Types, f) {
			return usageError("--fail-on: unknown type %q (one of %s)", f, strings.Join(probe.Types, ", "))
		}
	}
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	opts := probe.TypeOptions{Servers: r.servers, Family: r.family}
	if o.flags.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(s.ErrOut, "natcheck: "+format+"\n", args...) }
	}
	res, err := o.run(ctx, opts)
	if err != nil {
		return runError(parent, err)
	}
	if o.flags.json {
		err = report.WriteJSON(s.Out, report.NewTypeJSON(r.family, res))
	} else {
		err = report.TypeText(s.Out, res, o.flags.verbose)
	}
	if err != nil {
		return err
	}
	if slices.Contains(o.failOn, res.Type) {
		return &ExitError{Code: ExitVerdict, Err: fmt.Errorf("type %s matched --fail-on", res.Type)}
	}
	return nil
}

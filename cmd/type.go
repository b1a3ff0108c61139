package cmd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/diagnose"
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
IPs and filtering is unknown. See docs/nat-types.md.`,
		Example: `  natcheck type
  natcheck type -s stun.example.net -s 203.0.113.10:3478 --json | jq -r .type
  natcheck type --fail-on symmetric,udp-blocked || echo "a relay will be needed"
  natcheck type --lifetime --lifetime-max 90s`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runType(c.Context(), d, o)
		},
	}
	o.flags.register(c)
	c.Flags().StringSliceVar(&o.failOn, "fail-on", nil,
		"exit with status 4 when the type is one of these (comma separated: "+typeNames()+")")
	c.Flags().BoolVar(&o.lifetime, "lifetime", false, "also measure the idle UDP mapping lifetime (takes up to --lifetime-max)")
	c.Flags().DurationVar(&o.lifetimeMax, "lifetime-max", lifetime.DefaultMax, "longest idle time --lifetime probes")
	return c
}

// typeNames lists nat.Types as --fail-on takes them.
func typeNames() string {
	names := make([]string, len(nat.Types))
	for i, t := range nat.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func runType(parent context.Context, d *Deps, o *typeOptions) error {
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
	opts := diagnose.TypeOptions{Servers: r.servers, Family: r.family, Timeout: r.timeout,
		Lifetime: o.lifetime, LifetimeMax: o.lifetimeMax, RunType: o.run, MeasureLifetime: o.measure}
	if o.flags.verbose {
		opts.Logf = verboseLogger(d, "type")
	}
	t, err := diagnose.Type(parent, opts)
	if err != nil {
		return r.runError(parent, err)
	}
	res, l, lerr := t.Type, t.Lifetime, t.LifetimeErr
	if o.flags.json {
		if o.lifetime {
			err = report.WriteJSON(d.Out, report.NewTypeWithLifetimeJSON(r.family, res, l, lerr))
		} else {
			err = report.WriteJSON(d.Out, report.NewTypeJSON(r.family, res))
		}
	} else {
		err = report.TypeText(d.Out, res, o.flags.verbose)
		if err == nil && o.lifetime {
			err = report.LifetimeOrError(d.Out, l, lerr, o.flags.verbose)
		}
	}
	if err != nil {
		return err
	}
	if slices.Contains(o.failOn, string(res.Type)) {
		return &ExitError{Code: ExitVerdict, Err: fmt.Errorf("type %s matched --fail-on", res.Type)}
	}
	return nil
}

package diagnose

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// PortmapOptions choose what Portmap does.
type PortmapOptions struct {
	Servers []stunclient.Server
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	// Timeout bounds the gateway tests and the STUN question.
	Timeout time.Duration
	// Hold keeps the test mappings this long before they are deleted; it
	// extends the gateway check's deadline, not the tests'.
	Hold time.Duration
	// NoSTUN skips asking a STUN server for the public address (no
	// double-NAT comparison).
	NoSTUN bool
	// Check and WhoAmI are the probes; nil means portmap.Check and
	// probe.RunWhoAmI (tests pass fakes).
	Check  func(context.Context, portmap.Options) (*portmap.Report, error)
	WhoAmI func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error)
}

// PortmapResult is what the gateway answered and what STUN saw.
type PortmapResult struct {
	Report     *portmap.Report
	STUNMapped netip.Addr // invalid when STUN was not asked or failed
	STUNErr    error      // why STUNMapped is missing; nil when not asked
	Elapsed    time.Duration
}

// Portmap tests the gateway's port mapping and, unless o.NoSTUN, asks STUN
// for the public address at the same time (over IPv4, the family of the
// gateway's mappings), for `natcheck portmap`. It returns the check's
// error beside what was found: an interrupted check's report still says
// which test mappings were deleted. When the check fails, the STUN
// question is cancelled. Portmap returns only after everything it started
// has ended.
func Portmap(ctx context.Context, o PortmapOptions) (*PortmapResult, error) {
	check, whoami := o.Check, o.WhoAmI
	if check == nil {
		check = portmap.Check
	}
	if whoami == nil {
		whoami = probe.RunWhoAmI
	}
	start := time.Now()
	res := &PortmapResult{}
	stunCtx, cancelSTUN := context.WithTimeout(ctx, o.Timeout)
	defer cancelSTUN()
	var wg sync.WaitGroup
	if !o.NoSTUN {
		wg.Go(func() {
			w, err := whoami(stunCtx, probe.WhoAmIOptions{Servers: o.Servers, Family: stunclient.IPv4, Resolver: o.Resolver})
			if err != nil {
				res.STUNErr = err
				return
			}
			res.STUNMapped = w.Public.Addr()
		})
	}
	checkCtx, cancel := context.WithTimeout(ctx, o.Timeout+o.Hold)
	defer cancel()
	rep, err := check(checkCtx, portmap.Options{Wait: min(portmap.DefaultWait, o.Timeout), Hold: o.Hold})
	if err != nil {
		cancelSTUN()
	}
	wg.Wait()
	res.Report = rep
	res.Elapsed = time.Since(start)
	return res, err
}

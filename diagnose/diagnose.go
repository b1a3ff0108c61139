// Package diagnose runs natcheck's checks concurrently, each within its
// deadline, and collects what they found: every check for `natcheck
// report` (Run), the type test beside the lifetime measurement for
// `natcheck type` (Type), the gateway check beside STUN for `natcheck
// portmap` (Portmap). Nothing it starts outlives the call.
package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/pion/transport/v4/stdnet"
)

// CheckName names one check, as shown in progress and in the report.
type CheckName string

// The checks.
const (
	CheckType     CheckName = "nat-type"
	CheckPortmap  CheckName = "port-mapping"
	CheckIPv6     CheckName = "ipv6"
	CheckTCP      CheckName = "tcp"
	CheckServers  CheckName = "servers"
	CheckLocal    CheckName = "local"
	CheckLifetime CheckName = "binding-lifetime"
	CheckTurn     CheckName = "turn"
)

// Status of a finished check.
type Status string

const (
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
	StatusTimeout Status = "timeout" // cut short by the deadline: its findings may be partial
	StatusSkipped Status = "skipped" // not run (e.g. lifetime without --lifetime)
)

// Step reports one check's end; progress.Check satisfies it.
type Step interface {
	Done(note string)
	Fail(note string)
	Skip(note string)
}

// Options choose what Run does.
type Options struct {
	Servers []stunclient.Server
	// Resolver looks up server names, in every check; nil means the
	// system's resolver.
	Resolver stunclient.Resolver
	// Timeout bounds every check but the lifetime measurement.
	Timeout time.Duration
	// Lifetime adds the binding-lifetime measurement, which takes up to
	// LifetimeMax beyond the other checks' deadline.
	Lifetime    bool
	LifetimeMax time.Duration
	// NoPortmap skips the gateway's port-mapping test, which briefly
	// creates (and deletes) a mapping on the router.
	NoPortmap bool
	// Runs, when above 0, repeats the NAT type tests that many times
	// (RepeatType, each run with Timeout; the check has RunsBudget) and
	// records every run in Result.TypeRuns.
	Runs int
	// Bind is the local IPv4 address (and mapping port) of the NAT type
	// and TCP checks; zero means any. The other checks use their own
	// sockets.
	Bind netip.AddrPort
	// Turn adds the check of each TURN relay (report --turn), with
	// TurnOptions, under Timeout.
	Turn        []turncheck.URI
	TurnOptions turncheck.Options
	// Start announces a check; nil announces nothing.
	Start func(name CheckName) Step
}

// Check is one check's outcome.
type Check struct {
	Name    CheckName
	Status  Status
	Note    string // a short result, or why it failed
	Elapsed time.Duration
}

// Local is the host's own picture.
type Local struct {
	Interfaces []nat.HostAddr
	Gateway    portmap.Gateway // default route; zero when none was found
	GatewayErr error           // why no default route was found
	// InternetIface is the interface whose address the route to the
	// primary STUN server uses; "" when unknown.
	InternetIface string
}

// Result is everything the checks found. A nil section did not run or
// failed; its Check says why.
type Result struct {
	Type     *probe.TypeResult
	TypeRuns *Runs // with Options.Runs: every run and their agreement
	Portmap  *portmap.Report
	IPv6     *probe.IPv6Check
	TCP      *probe.TCPMapping
	Servers  []probe.ServerCheck
	Lifetime *lifetime.Result
	Turn     []turncheck.Result // with Options.Turn: each relay's check
	Local    Local
	Checks   []Check
	Elapsed  time.Duration
}

// Check returns the outcome of the named check.
func (r *Result) Check(name CheckName) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Run runs the checks concurrently for at most o.Timeout (the lifetime
// measurement has LifetimeMax more). A check that does not finish in time
// is marked timeout with whatever it found; Run itself never fails. It
// returns ctx's error only when ctx was cancelled (Ctrl-C).
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	res := &Result{}
	checkCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	r := &runner{o: o, res: res, ctx: checkCtx}

	r.run(CheckLocal, func(ctx context.Context) (string, error) { return r.local() })
	typeCtx := checkCtx
	if o.Runs > 1 {
		var cancel context.CancelFunc
		typeCtx, cancel = context.WithTimeout(ctx, RunsBudget(o.Runs, o.Timeout))
		defer cancel()
	}
	r.runWith(CheckType, typeCtx, func(ctx context.Context) (string, error) {
		one := func(ctx context.Context) (*probe.TypeResult, error) {
			return probe.RunType(ctx, probe.TypeOptions{Servers: o.Servers, Family: stunclient.IPv4, Resolver: o.Resolver, Bind: o.Bind})
		}
		if o.Runs > 0 {
			t, runs, err := RepeatType(ctx, o.Runs, o.Timeout, one)
			r.set(func() { res.Type, res.TypeRuns = t, runs })
			if t != nil {
				return fmt.Sprintf("%s, %s", t.Type, AgreementNote(runs)), err
			}
			return "", err
		}
		t, err := one(ctx)
		r.set(func() { res.Type = t })
		if t != nil {
			return string(t.Type), err
		}
		return "", err
	})
	if o.NoPortmap {
		r.skip(CheckPortmap, "not run (--no-portmap)")
	} else {
		r.run(CheckPortmap, func(ctx context.Context) (string, error) {
			p, err := portmap.Check(ctx, portmap.Options{})
			r.set(func() { res.Portmap = p })
			if err != nil {
				return "", err
			}
			return portmapNote(p), nil
		})
	}
	r.run(CheckIPv6, func(ctx context.Context) (string, error) {
		c, err := probe.CheckIPv6(ctx, probe.IPv6Options{Servers: o.Servers, Resolver: o.Resolver})
		r.set(func() { res.IPv6 = c })
		if c != nil {
			return "STUN over IPv6: " + string(c.STUN) + ", path " + string(c.Path), err
		}
		return "", err
	})
	r.run(CheckTCP, func(ctx context.Context) (string, error) {
		m, err := probe.RunTCPMapping(ctx, probe.TCPMappingOptions{Servers: o.Servers, Family: stunclient.IPv4, Resolver: o.Resolver, Bind: o.Bind})
		r.set(func() { res.TCP = m })
		if m != nil {
			return "mapping " + string(m.Mapping), err
		}
		return "", err
	})
	r.run(CheckServers, func(ctx context.Context) (string, error) {
		cs := probe.CheckServers(ctx, nil, o.Resolver, 0, o.Servers) // each server in its own family
		r.set(func() { res.Servers = cs })
		return serversNote(cs), nil
	})
	if o.Lifetime {
		lifeCtx, cancel := context.WithTimeout(ctx, o.Timeout+lifetime.Budget(o.LifetimeMax))
		defer cancel()
		r.runWith(CheckLifetime, lifeCtx, func(ctx context.Context) (string, error) {
			l, err := lifetime.Measure(ctx, lifetime.Options{Servers: o.Servers, Family: stunclient.IPv4, Resolver: o.Resolver, Max: o.LifetimeMax})
			r.set(func() { res.Lifetime = l })
			if l != nil {
				return string(l.Result), err
			}
			return "", err
		})
	} else {
		r.skip(CheckLifetime, "not measured (--lifetime)")
	}
	if len(o.Turn) > 0 {
		r.run(CheckTurn, func(ctx context.Context) (string, error) {
			rs := turncheck.Run(ctx, o.Turn, o.TurnOptions)
			r.set(func() { res.Turn = rs })
			return TurnNote(rs), nil
		})
	} else {
		r.skip(CheckTurn, "not run (--turn)")
	}
	r.wg.Wait()

	if res.Type != nil && res.Type.Primary.IsValid() {
		res.Local.InternetIface = ifaceOf(res.Local.Interfaces, res.Type.RouteSource)
	}
	orderChecks(res.Checks)
	res.Elapsed = time.Since(start)
	if errors.Is(ctx.Err(), context.Canceled) {
		return res, ctx.Err()
	}
	return res, nil
}

// runner starts checks and records their outcomes.
type runner struct {
	o   Options
	res *Result
	ctx context.Context
	mu  sync.Mutex
	wg  sync.WaitGroup
}

func (r *runner) set(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

func (r *runner) step(name CheckName) Step {
	if r.o.Start == nil {
		return nopStep{}
	}
	return r.o.Start(name)
}

func (r *runner) run(name CheckName, f func(context.Context) (string, error)) {
	r.runWith(name, r.ctx, f)
}

// runWith runs f in its own goroutine under ctx and files its outcome.
func (r *runner) runWith(name CheckName, ctx context.Context, f func(context.Context) (string, error)) {
	step := r.step(name)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t0 := time.Now()
		note, err := f(ctx)
		c := Check{Name: name, Status: StatusDone, Note: note, Elapsed: time.Since(t0)}
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) && (err != nil || note == ""):
			c.Status, c.Note = StatusTimeout, "did not finish in time"
			if note != "" {
				c.Note += "; partial: " + note
			}
			step.Fail(c.Note)
		case err != nil:
			c.Status, c.Note = StatusFailed, err.Error()
			step.Fail(c.Note)
		default:
			step.Done(note)
		}
		r.set(func() { r.res.Checks = append(r.res.Checks, c) })
	}()
}

func (r *runner) skip(name CheckName, why string) {
	r.step(name).Skip(why)
	r.set(func() { r.res.Checks = append(r.res.Checks, Check{Name: name, Status: StatusSkipped, Note: why}) })
}

// local reads interfaces and the default route; it needs no network.
func (r *runner) local() (string, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return "", err
	}
	ifs, err := probe.Interfaces(n)
	if err != nil {
		return "", err
	}
	gw, gwErr := (portmap.SystemGateway{}).FindGateway()
	r.set(func() {
		r.res.Local.Interfaces = ifs
		r.res.Local.Gateway = gw
		r.res.Local.GatewayErr = gwErr
	})
	if gwErr != nil {
		return fmt.Sprintf("%d addresses, no default route", len(ifs)), nil
	}
	return fmt.Sprintf("%d addresses, default route via %s dev %s", len(ifs), gw.Addr, gw.Iface), nil
}

func ifaceOf(ifs []nat.HostAddr, a netip.Addr) string {
	for _, h := range ifs {
		if h.Addr == a {
			return h.Iface
		}
	}
	return ""
}

func portmapNote(p *portmap.Report) string {
	note := ""
	for _, r := range p.Results {
		if note != "" {
			note += ", "
		}
		note += fmt.Sprintf("%s %s", r.Protocol, r.Supported)
	}
	return note
}

func serversNote(cs []probe.ServerCheck) string {
	up, verified := 0, 0
	for _, c := range cs {
		if c.Replied {
			up++
		}
		if c.RFC5780 == nat.RFC5780Verified {
			verified++
		}
	}
	return fmt.Sprintf("%d of %d answered, %d with verified RFC 5780 support", up, len(cs), verified)
}

// TurnNote sums up the relays' checks: the verdict of one relay, or how
// many of several work.
func TurnNote(rs []turncheck.Result) string {
	works := 0
	for _, r := range rs {
		if r.Verdict == turncheck.Works {
			works++
		}
	}
	if len(rs) == 1 {
		if works == 1 {
			return "relay works"
		}
		return "relay " + string(rs[0].Verdict) + " at " + string(rs[0].FailedStep)
	}
	return fmt.Sprintf("%d of %d relays work", works, len(rs))
}

// checkOrder is the order of checks in a report.
var checkOrder = []CheckName{CheckType, CheckPortmap, CheckIPv6, CheckTCP, CheckLifetime, CheckServers, CheckTurn, CheckLocal}

// orderChecks puts checks in report order (they finish in any order).
func orderChecks(cs []Check) {
	slices.SortFunc(cs, func(a, b Check) int {
		return slices.Index(checkOrder, a.Name) - slices.Index(checkOrder, b.Name)
	})
}

type nopStep struct{}

func (nopStep) Done(string) {}
func (nopStep) Fail(string) {}
func (nopStep) Skip(string) {}

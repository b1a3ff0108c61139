package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

// Protocol names one port-mapping protocol.
type Protocol string

// The protocols Check tests.
const (
	UPnP   Protocol = "upnp"    // UPnP IGD: SSDP discovery, then SOAP
	NATPMP Protocol = "nat-pmp" // RFC 6886
	PCP    Protocol = "pcp"     // RFC 6887
)

// Protocols lists every protocol in report order.
var Protocols = []Protocol{UPnP, NATPMP, PCP}

// Name is the protocol as people write it: UPnP, NAT-PMP, PCP.
func (p Protocol) Name() string {
	switch p {
	case UPnP:
		return "UPnP"
	case NATPMP:
		return "NAT-PMP"
	case PCP:
		return "PCP"
	}
	return string(p)
}

// Result is what one protocol's test found. Tri-state fields are Unknown when the
// step was not reached (an earlier step failed, or the run was interrupted).
type Result struct {
	Protocol Protocol
	// Supported: Yes when a server of the protocol answered, No when the
	// gateway refused (ICMP port unreachable), answered with another
	// protocol, or stayed silent for the whole wait.
	Supported tri.Bool
	// Server identifies the server: SSDP's SERVER header for UPnP, the
	// epoch for NAT-PMP and PCP.
	Server string
	// ExternalIP is the gateway's own external address as it reports it;
	// invalid when it reported none (or 0.0.0.0).
	ExternalIP netip.Addr
	// MappingAdded: a UDP mapping for our test socket was granted.
	// MappingDeleted: the gateway confirmed its deletion; Unknown when
	// there was nothing to delete.
	MappingAdded, MappingDeleted tri.Bool
	InternalPort, ExternalPort   uint16        // of the test mapping
	Lifetime                     time.Duration // granted lifetime of the test mapping
	Err                          error         // the failures, in order; nil if none
	Timings                      Timings
}

// Timings of one protocol's steps; zero for steps not taken.
type Timings struct {
	Discover   time.Duration // first answer (SSDP reply, NAT-PMP address, PCP ANNOUNCE)
	ExternalIP time.Duration // the external-address request (UPnP only: its own SOAP call)
	Add        time.Duration
	Delete     time.Duration
	Total      time.Duration
}

// Report is the result of Check.
type Report struct {
	Gateway Gateway
	Results []Result // one per protocol tested, in the order of Protocols
	Elapsed time.Duration
}

// Result returns the result for p, and whether p was tested.
func (r *Report) Result(p Protocol) (Result, bool) {
	for _, res := range r.Results {
		if res.Protocol == p {
			return res, true
		}
	}
	return Result{Protocol: p}, false
}

// Granted lists the protocols that granted the test mapping, in report
// order; nil when none did.
func (r *Report) Granted() []Protocol {
	var ps []Protocol
	for _, res := range r.Results {
		if res.MappingAdded == tri.Yes {
			ps = append(ps, res.Protocol)
		}
	}
	return ps
}

// ExternalIP is the gateway's external address as reported by the first
// protocol (in report order) that reported one; invalid if none did.
func (r *Report) ExternalIP() netip.Addr {
	for _, res := range r.Results {
		if res.ExternalIP.IsValid() {
			return res.ExternalIP
		}
	}
	return netip.Addr{}
}

// Options configure Check. The zero value tests all three protocols on the
// system's default gateway.
type Options struct {
	// Gateway finds the gateway; nil means SystemGateway{}.
	Gateway GatewayFinder
	// Protocols to test; nil means all.
	Protocols []Protocol
	// Wait bounds how long each protocol waits for its first answer. A
	// gateway without the service usually refuses at once (ICMP port
	// unreachable); Wait only matters for one that drops silently.
	// Default DefaultWait.
	Wait time.Duration
	// Lifetime requested for the test mapping. Default DefaultLifetime.
	Lifetime time.Duration
	// CleanupTimeout bounds the deletion of test mappings, which runs even
	// after ctx is done. Default DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// Hold keeps each test mapping this long (or until ctx ends) before
	// deleting it, so that it can be looked at on the router. Zero: delete
	// at once.
	Hold time.Duration
}

const (
	// DefaultWait: the gateway is one hop away and answers within
	// milliseconds; a second allows three transmissions (0, 250, 750 ms,
	// RFC 6886's initial 250 ms doubling) and bounds a silent gateway.
	DefaultWait = time.Second
	// DefaultLifetime is short so that a mapping survives a crash of
	// natcheck by a minute at most.
	DefaultLifetime = 60 * time.Second
	// DefaultCleanupTimeout bounds deletion after an interruption: long
	// enough for retransmissions to a gateway that answered moments ago,
	// short enough that Ctrl-C still feels immediate.
	DefaultCleanupTimeout = 1500 * time.Millisecond
	// firstRTO is the initial retransmission timeout towards the gateway
	// (RFC 6886 section 3.1).
	firstRTO = 250 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Gateway == nil {
		o.Gateway = SystemGateway{}
	}
	if o.Protocols == nil {
		o.Protocols = Protocols
	}
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.CleanupTimeout <= 0 {
		o.CleanupTimeout = DefaultCleanupTimeout
	}
	return o
}

// Check finds the gateway and tests each protocol on it concurrently:
// discovery, the external address, then adding a UDP mapping for a socket
// of its own and deleting it again. The caller's ctx bounds the tests; every
// mapping created is deleted before Check returns, also when ctx ends early
// (deletion then runs on a fresh context bounded by CleanupTimeout). The
// error is non-nil only when no gateway was found.
func Check(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	o = o.withDefaults()
	gw, err := o.Gateway.FindGateway()
	if err != nil {
		return nil, err
	}
	rep := &Report{Gateway: gw, Results: make([]Result, len(o.Protocols))}
	var wg sync.WaitGroup
	for i, p := range o.Protocols {
		wg.Go(func() {
			c := &checker{o: o, gw: gw, res: &rep.Results[i]}
			c.res.Protocol = p
			t0 := time.Now()
			c.run(ctx, p)
			c.res.Timings.Total = time.Since(t0)
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// checker runs one protocol's test.
type checker struct {
	o   Options
	gw  Gateway
	res *Result
}

func (c *checker) run(ctx context.Context, p Protocol) {
	switch p {
	case UPnP:
		c.upnp(ctx)
	case NATPMP:
		c.natpmp(ctx)
	case PCP:
		c.pcp(ctx)
	default:
		c.fail(fmt.Errorf("unknown protocol %q", p))
	}
}

// fail records a failure; several are joined in order (see joinedErr).
func (c *checker) fail(err error) {
	switch {
	case err == nil:
	case c.res.Err == nil:
		c.res.Err = err
	default:
		j, ok := c.res.Err.(joinedErr)
		if !ok {
			j = joinedErr{c.res.Err}
		}
		c.res.Err = append(j, err)
	}
}

// joinedErr is several failures of one protocol's test, in order. Its text
// joins theirs with "; " (errors.Join would use newlines); errors.Is and
// errors.As see each of them.
type joinedErr []error

func (j joinedErr) Error() string {
	var b strings.Builder
	for i, err := range j {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (j joinedErr) Unwrap() []error { return j }

// deleted records how a NAT-PMP or PCP deletion of the test mapping went
// (err from the gateway's answer). A confirmed deletion counts when the
// mapping was added, or when ctx was interrupted (an add may have been
// granted unseen); a failure counts only when the mapping was added.
func (c *checker) deleted(ctx context.Context, err error) {
	switch {
	case err == nil:
		if c.res.MappingAdded == tri.Yes || interrupted(ctx) != nil {
			c.res.MappingDeleted = tri.Yes
		}
	case c.res.MappingAdded == tri.Yes:
		c.res.MappingDeleted = tri.No
		c.fail(fmt.Errorf("delete: %w", err))
	}
}

// cleanupContext is the context deletions run on: it outlives the caller's
// cancellation (Ctrl-C must not leave a mapping behind) but is bounded.
func (c *checker) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.o.CleanupTimeout)
}

// waitContext bounds the wait for a first answer.
func (c *checker) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.o.Wait)
}

// testSocket binds the UDP socket whose port the test mapping points at, so
// that the port is really ours while the mapping exists.
func (c *checker) testSocket() (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.gw.Local, 0)))
	if err != nil {
		return nil, fmt.Errorf("test socket: %w", err)
	}
	c.res.InternalPort = conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	return conn, nil
}

// lifetimeSeconds is the requested lifetime in whole seconds, at least 1.
func (c *checker) lifetimeSeconds() uint32 {
	return uint32(max(c.o.Lifetime/time.Second, 1))
}

// hold waits o.Hold after a mapping was added, or until ctx ends.
func (c *checker) hold(ctx context.Context) {
	if c.o.Hold <= 0 {
		return
	}
	t := time.NewTimer(c.o.Hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ErrRefused means the gateway answered with ICMP port unreachable: nothing
// listens there, so the protocol is not supported.
var ErrRefused = errors.New("refused (ICMP port unreachable): no server on the gateway")

// ErrNoAnswer means the gateway stayed silent for the whole wait (a NAT-PMP
// or PCP request timed out): errors.Is matches the errNoAnswer that says
// how long and how often we asked.
var ErrNoAnswer = errors.New("no answer from the gateway")

// errNoAnswer means the gateway stayed silent for the whole wait.
type errNoAnswer struct {
	wait  time.Duration
	tries int
}

func (errNoAnswer) Is(target error) bool { return target == ErrNoAnswer }

func (e errNoAnswer) Error() string {
	return fmt.Sprintf("no answer in %s (%d transmissions)", e.wait.Round(time.Millisecond), e.tries)
}

// interrupted says whether ctx ended before the test could decide.
func interrupted(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

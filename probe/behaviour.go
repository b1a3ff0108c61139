package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4"
)

// TypeConfig says against what and how a behaviour run probes.
type TypeConfig struct {
	Net     transport.Net     // stdnet for real runs, vnet in tests
	Family  stunclient.Family // IPv4 or IPv6
	Servers []netip.AddrPort  // servers given by address, in the user's order
	// Names are servers as the user gave them (names or IP literals),
	// asked after Servers. Each is resolved inside its binding-round task,
	// with Resolver (nil: the system's), so that a hanging lookup delays
	// no other server and a late one may still join the round.
	Names    []stunclient.Server
	Resolver stunclient.Resolver
	Timeout  time.Duration // cap on the whole run, besides ctx's deadline
	// TTLProbe enables the TTL-limited carrier-NAT probe. It needs a real
	// socket (Linux); runs on a simulated network leave it off.
	TTLProbe bool
	// Logf receives progress lines for --verbose; nil discards them.
	Logf func(format string, args ...any)
	// Bind, when valid, is the local address every socket of the run uses
	// (--bind); a non-zero port is the mapping socket's. Zero means the
	// wildcard address and ports the system picks.
	Bind netip.AddrPort
}

// Socket is one local socket a run opened, and what for.
type Socket struct {
	Use   string         // mapping, filtering, verify, hairpin, ttl, tcp
	Local netip.AddrPort // the bound address (the route's source when bound to the wildcard)
}

// TypeResult is a finished behaviour run: what was seen and what it means.
type TypeResult struct {
	nat.Observations
	nat.Verdict
	Servers  []netip.AddrPort
	Primary  netip.AddrPort // the server the RFC 5780 tests went to
	Duration time.Duration
	// Sockets are the local sockets the run opened, in opening order.
	Sockets []Socket
}

// Timing of the tests. Every wait derives from the round trip measured in
// the binding round; the floors cover scheduling noise on fast links.
//
// A test that expects silence sends silenceCopies copies of its request
// (each its own transaction), paced copyGap apart, and waits
// max(2*RTT, silenceFloor) after the last. With 10% loss each way a copy
// is answered with probability 0.9*0.9 = 0.81, so all six fail with
// probability 0.19^6 = 4.7e-5. A verdict rests on at most seven such
// exchanges (binding, tests II and III, two CHANGE-REQUEST tests, the two
// legs of the verify test), so a run is wrong with probability at most
// 7*4.7e-5 = 3.3e-4: over 100 runs 0.033 wrong runs are expected and two
// or more happen with probability about 5e-4. Five copies would give
// 1.7e-3 per run and 1.3% for two or more in 100 runs: too close. (The
// CHANGE-REQUEST and verify tests run from two sockets each, see fresh,
// which only lowers these odds further.)
const (
	silenceCopies = 6
	silenceFloor  = 100 * time.Millisecond
	minGap        = 10 * time.Millisecond
	// Before any RTT is known, copies go out after 0, 50, 150, 350 ms ...
	firstGap = 50 * time.Millisecond
	// Without any UDP answer by then, STUN over TCP starts in parallel.
	tcpAfter = 250 * time.Millisecond
	// UDP gives up this long after TCP answered (at least 10 TCP RTTs):
	// by then the UDP copies have had every chance.
	udpGraceAfterTCP = time.Second
	maxCopies        = 8
	// After a plain server's answer, how long at least an RFC 5780 server
	// still gets to answer: public ones are few and often a continent away.
	rfc5780Wait = 500 * time.Millisecond
	// The verify test's change leg starts this long after its opening leg:
	// time for the first datagram to pass the NAT.
	openLead = 5 * time.Millisecond
	// Without a deadline on ctx a run still ends: offline costs this long.
	defaultTypeTimeout = 5 * time.Second
)

func (c *TypeConfig) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// TypeOptions configure RunType.
type TypeOptions struct {
	Servers []stunclient.Server
	Family  stunclient.Family
	Net     transport.Net // nil means the host's real network (and enables the TTL probe)
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	Logf     func(format string, args ...any)
	// Bind is the local address (and, with a port, the mapping socket's
	// port) to test from; zero means any (TypeConfig.Bind).
	Bind netip.AddrPort
}

// RunType runs the behaviour tests against the servers until ctx ends. The
// binding round starts at once: each server's task resolves its name (under
// its own deadline, stunclient.LookupTimeout) and then asks it, so the
// tests start with the first server that answers and a name that resolves
// late still joins within the round's grace; an unresolvable name is
// skipped. It returns ErrNoAnswer, with the partial result, when no server
// answered (a *stunclient.UnresolvedError when no name resolved at all).
func RunType(ctx context.Context, o TypeOptions) (*TypeResult, error) {
	cfg := TypeConfig{Net: o.Net, Family: o.Family, Names: o.Servers, Resolver: o.Resolver, Logf: o.Logf, Bind: o.Bind}
	if cfg.Family == 0 {
		cfg.Family = stunclient.IPv4
	}
	cfg.TTLProbe = cfg.Net == nil // the TTL probe needs a real socket
	var err error
	if cfg.Net, err = stunclient.NetOrReal(cfg.Net); err != nil {
		return nil, err
	}
	return runType(ctx, cfg)
}

// runType runs the tests against resolved servers and classifies what
// they saw.
func runType(ctx context.Context, cfg TypeConfig) (*TypeResult, error) {
	start := time.Now()
	if len(cfg.Servers)+len(cfg.Names) == 0 {
		return nil, errors.New("no STUN server to ask")
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(defaultTypeTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}

	res := &TypeResult{}
	res.HostAddrs, _ = Interfaces(cfg.Net)

	mc, err := stunclient.Listen(ctx, cfg.Net, cfg.Family, cfg.laddr(cfg.Bind.Port()))
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	r := &typeRun{cfg: &cfg, deadline: deadline}
	defer func() { res.Sockets = r.socketsFrom(res.RouteSource) }()
	r.opened("mapping", mc.LocalAddr())

	binds, tcp, unresolved := r.bindingRound(ctx, mc)
	for _, b := range binds {
		res.Servers = append(res.Servers, b.To) // the user's order
	}
	if cfg.Bind.IsValid() {
		res.RouteSource = cfg.Bind.Addr() // every socket leaves from it
	} else if len(res.Servers) > 0 {
		res.RouteSource, _ = RouteSource(cfg.Net, cfg.Family, res.Servers[0])
	}
	prim, ok := pickPrimary(binds)
	if !ok {
		res.Tests = append(res.Tests, binds...)
		res.Tests = append(res.Tests, tcp...)
		res.Verdict = nat.Classify(res.Observations)
		res.Duration = time.Since(start)
		if res.Type == nat.TypeUDPBlocked {
			for _, t := range tcp {
				if t.Replied && !res.Primary.IsValid() {
					res.Primary = t.To
				}
			}
			return res, nil
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return res, ctx.Err() // interrupted, not unanswered
		}
		return res, typeNoAnswer(binds, len(tcp) > 0, unresolved)
	}
	res.Primary = binds[prim].To
	if !cfg.Bind.IsValid() {
		res.RouteSource, _ = RouteSource(cfg.Net, cfg.Family, res.Primary)
	}
	for i := range binds {
		if i == prim {
			binds[i].Name = nat.TestBinding
		} else {
			binds[i].Name = nat.TestServer
		}
	}
	res.Tests = append(res.Tests, binds[prim])
	res.Tests = append(res.Tests, append(binds[:prim:prim], binds[prim+1:]...)...)
	r.rtt = maxRTT(binds)
	cfg.logf("binding round: %d of %d servers answered, slowest RTT %v", countReplied(binds), len(binds), r.rtt)

	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(t nat.TestResult) {
		cfg.logf("%s", summary(t))
		mu.Lock()
		res.Tests = append(res.Tests, t)
		mu.Unlock()
	}
	goTest := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	b := res.Tests[0]
	// Every server that answered is asked again from the mapping socket,
	// as are tests II and III's addresses: a server that names two
	// mappings for one destination is caught (probe/nat excludes it). The
	// second asks overlap the filtering tests, which take longer.
	for _, t := range res.Tests {
		if t.Replied && t.ErrorCode == 0 && t.Public().IsValid() {
			goTest(func() { add(r.exchange(ctx, mc, nat.TestRepeat, t.To, 0, netip.AddrPort{})) })
		}
	}
	if o := b.OtherAddress; validOther(b.To, o) {
		pa := b.To
		alt := netip.AddrPortFrom(o.Addr(), pa.Port())
		goTest(func() { add(r.exchange(ctx, mc, nat.TestMappingAltIP, alt, 0, netip.AddrPort{})) })
		goTest(func() { add(r.exchange(ctx, mc, nat.TestRepeat, alt, 0, netip.AddrPort{})) })
		goTest(func() { add(r.exchange(ctx, mc, nat.TestMappingAltIPPort, o, 0, netip.AddrPort{})) })
		goTest(func() { add(r.exchange(ctx, mc, nat.TestRepeat, o, 0, netip.AddrPort{})) })
		goTest(func() { add(r.fresh(ctx, nat.TestFilterIPPort, pa, nat.ChangeIP|nat.ChangePort, o)) })
		goTest(func() {
			add(r.fresh(ctx, nat.TestFilterPort, pa, nat.ChangePort, netip.AddrPortFrom(pa.Addr(), o.Port())))
		})
		goTest(func() { add(r.pair(func() nat.TestResult { return r.verify(ctx, pa, o) })) })
	}
	goTest(func() { add(r.hairpin(ctx, b.To)) })
	if cfg.TTLProbe {
		goTest(func() {
			hops, reached, tested := ttlProbe(ctx, cfg.Bind.Addr(), b.To, r.silenceWait(), r.rtt, func(l netip.AddrPort) { r.opened("ttl", l) })
			mu.Lock()
			res.Hops, res.ReachedTTL, res.HopsTested = hops, reached, tested
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Verdict = nat.Classify(res.Observations)
	res.Duration = time.Since(start)
	if errors.Is(ctx.Err(), context.Canceled) {
		return res, ctx.Err() // interrupted: the caller says so
	}
	// Reaching the deadline is no failure: tests cut short are unknown.
	return res, nil
}

// typeNoAnswer is the error of a binding round nobody answered: asked
// servers were asked in vain, unresolved names are named with their DNS
// cause. When no name resolved and nothing else was asked, DNS is the cause
// (a *stunclient.UnresolvedError).
func typeNoAnswer(binds []nat.TestResult, triedTCP bool, unresolved []error) error {
	asked := len(binds)
	if asked == 0 {
		if err := stunclient.AllUnresolved(unresolved); err != nil {
			return err
		}
	}
	how := "UDP"
	if triedTCP {
		how = "UDP, then TCP"
	}
	msg := fmt.Sprintf("%d asked over %s", asked, how)
	if len(unresolved) > 0 {
		parts := make([]string, len(unresolved))
		for i, err := range unresolved {
			parts[i] = err.Error()
		}
		msg += fmt.Sprintf("; %d not resolved: %s", len(unresolved), strings.Join(parts, "; "))
	}
	if err := allRefused(binds); err != nil {
		return fmt.Errorf("%w (%s; %w)", stunclient.ErrNoAnswer, msg, err)
	}
	return fmt.Errorf("%w (%s)", stunclient.ErrNoAnswer, msg)
}

func wildcard(f stunclient.Family) string {
	if f == stunclient.IPv6 {
		return "[::]:0"
	}
	return "0.0.0.0:0"
}

// laddr is the address a socket of the run binds to: Bind's IP (else the
// wildcard) and port.
func (c *TypeConfig) laddr(port uint16) string {
	if c.Bind.IsValid() {
		return netip.AddrPortFrom(c.Bind.Addr(), port).String()
	}
	return strings.TrimSuffix(wildcard(c.Family), "0") + strconv.Itoa(int(port))
}

// typeRun holds what the tests of one run share: the measured RTT and the
// overall deadline.
type typeRun struct {
	cfg      *TypeConfig
	deadline time.Time
	rtt      time.Duration

	mu       sync.Mutex
	resolved []netip.AddrPort // distinct server addresses, in the order they resolved
	sockets  []Socket
}

// claim adds a server's address to the run's servers, unless another task
// (another name of the same server) claimed it first: one server must not
// count as two witnesses.
func (r *typeRun) claim(a netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Contains(r.resolved, a) {
		return false
	}
	r.resolved = append(r.resolved, a)
	return true
}

// resolvedServers is a copy of the addresses resolved so far.
func (r *typeRun) resolvedServers() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.resolved)
}

// targets are the servers of the binding round: those given by address,
// then the named ones.
func (r *typeRun) targets() []stunclient.Server {
	out := make([]stunclient.Server, 0, len(r.cfg.Servers)+len(r.cfg.Names))
	for _, a := range r.cfg.Servers {
		out = append(out, stunclient.Server{Input: a.String(), Host: a.Addr().String(), Port: int(a.Port())})
	}
	return append(out, r.cfg.Names...)
}

// opened records a socket the run opened.
func (r *typeRun) opened(use string, local netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sockets = append(r.sockets, Socket{Use: use, Local: local})
}

// gap is the pacing of copies once the RTT is known: half a round trip,
// so copies are spread over the time a reply needs.
func (r *typeRun) gap() time.Duration { return max(r.rtt/2, minGap) }

// silenceWait is how long after its last copy a test waits for a reply.
func (r *typeRun) silenceWait() time.Duration { return max(2*r.rtt, silenceFloor) }

// window is the whole time a test that expects silence listens.
func (r *typeRun) window() time.Duration {
	return time.Duration(silenceCopies-1)*r.gap() + r.silenceWait()
}

// send is one paced exchange on a Conn: copies of a Binding request, each
// its own transaction, until one is answered or the window closes.
type send struct {
	to      netip.AddrPort
	change  nat.ChangeFlags
	accept  func(netip.AddrPort) bool
	gaps    func(i int) time.Duration // wait after copy i
	copies  int
	waitEnd time.Time // stop listening then
	// witness follows each copy with a plain Binding request to the same
	// address (see nat.TestResult.Witnessed).
	witness bool
}

// witnessLag is how long after a copy its witness leaves: enough for the
// copy to be on the wire first, so that a rate limiter that passed the
// witness had a token for the copy too.
const witnessLag = time.Millisecond

// paced sends copies of a request and returns the first reply, and how
// many witnesses were answered. Separate transactions (rather than one
// retransmitted) let the pacing follow the measured RTT instead of
// doubling from a fixed RTO.
func paced(ctx context.Context, c *stunclient.Conn, s send) (stunclient.Response, int, int, error) {
	ctx, cancel := context.WithDeadline(ctx, s.waitEnd)
	defer cancel()
	type answer struct {
		r   stunclient.Response
		err error
	}
	got := make(chan answer, s.copies)         // buffered: copies never block after return
	witnessed := make(chan struct{}, s.copies) // answered witnesses
	sent, seen := 0, 0
	launch := func() {
		sent++
		go func() {
			wait := time.Until(s.waitEnd)
			resp, err := c.Do(ctx, stunclient.Request{To: s.to, Change: s.change, AcceptFrom: s.accept,
				Attempts: 1, RTO: wait, LastWait: wait})
			got <- answer{resp, err}
		}()
		if s.witness {
			go func() {
				select {
				case <-time.After(witnessLag):
				case <-ctx.Done():
					return
				}
				wait := time.Until(s.waitEnd)
				if _, err := c.Do(ctx, stunclient.Request{To: s.to, Attempts: 1, RTO: wait, LastWait: wait}); err == nil {
					witnessed <- struct{}{}
				}
			}()
		}
	}
	count := func() int {
		for {
			select {
			case <-witnessed:
				seen++
			default:
				return seen
			}
		}
	}
	launch()
	timer := time.NewTimer(s.gaps(0))
	defer timer.Stop()
	for {
		select {
		case a := <-got:
			if a.err == nil {
				a.r.Attempts = sent
				return a.r, sent, count(), nil
			}
			if errors.Is(a.err, stunclient.ErrRefused) {
				return stunclient.Response{}, sent, count(), a.err // a closed port: no copy will be answered
			}
			if !errors.Is(a.err, stunclient.ErrNoResponse) && ctx.Err() == nil {
				return stunclient.Response{}, sent, count(), a.err // the socket failed: say why
			}
		case <-witnessed:
			seen++
		case <-timer.C:
			if sent < s.copies {
				launch()
				timer.Reset(s.gaps(sent - 1))
			}
		case <-ctx.Done():
			return stunclient.Response{}, sent, count(), stunclient.ErrNoResponse
		}
	}
}

// bindingRound sends Binding requests to every server from the mapping
// socket at once, on the gather engine: after a plain server's answer an
// RFC 5780 server still gets gather.AwaitRFC5780, after an RFC 5780
// server's the others get gather.Corroborate, so a dead server never costs
// a timeout. STUN over TCP starts if UDP stays silent (tcpFallback).
//
// Each task first resolves its server's name: a lookup that hangs is one
// more silent server, cut off by the grace like any other; one that ends
// late still joins while the round runs. binds holds the servers asked (in
// target order, a second name of one address left out); unresolved holds
// the lookups that failed, each a *stunclient.ResolveError.
func (r *typeRun) bindingRound(ctx context.Context, mc *stunclient.Conn) (binds, tcp []nat.TestResult, unresolved []error) {
	udpCtx, stopUDP := context.WithCancel(ctx)
	defer stopUDP()
	var mu sync.Mutex
	var firstRTT time.Duration
	gaps := func(i int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if firstRTT > 0 {
			return max(firstRTT/2, minGap)
		}
		return firstGap << min(i, 5)
	}
	var udpAnswered atomic.Bool
	targets := r.targets()
	asked := make([]bool, len(targets))
	lookupErrs := make([]error, len(targets))
	tasks := make([]gather.Task[nat.TestResult], len(targets))
	for i, srv := range targets {
		tasks[i] = func(ctx context.Context, answered func(gather.Answer)) nat.TestResult {
			addrs, err := srv.Resolve(ctx, r.cfg.Resolver, r.cfg.Family)
			if err != nil {
				if !errors.Is(err, context.Canceled) { // not given up while resolving
					lookupErrs[i] = err
					r.cfg.logf("%v", err)
				}
				return nat.TestResult{}
			}
			s := addrs[0]
			if !r.claim(s) {
				return nat.TestResult{} // another name of a server already asked
			}
			asked[i] = true
			resp, n, _, err := paced(ctx, mc, send{to: s, gaps: gaps, copies: maxCopies, waitEnd: r.deadline})
			t := result(nat.TestServer, mc.LocalAddr(), s, 0, resp, n, err)
			if err == nil {
				rtt := max(resp.RTT, time.Millisecond)
				mu.Lock()
				if firstRTT == 0 {
					firstRTT = rtt
				}
				mu.Unlock()
				udpAnswered.Store(true)
				answered(gather.Answer{RTT: rtt, Decisive: validOther(s, t.OtherAddress)})
			}
			return t
		}
	}
	tcpCtx, stopTCP := context.WithCancel(ctx)
	defer stopTCP()
	tcpDone := make(chan []nat.TestResult, 1)
	go func() { tcpDone <- r.tcpFallback(tcpCtx, &udpAnswered, stopUDP) }()

	rs := gather.Run(udpCtx, tasks, gather.Options[nat.TestResult]{Grace: gather.AwaitRFC5780, Decisive: gather.Corroborate})
	for i, res := range rs {
		if asked[i] {
			binds = append(binds, res.Value)
		}
		if lookupErrs[i] != nil {
			unresolved = append(unresolved, lookupErrs[i])
		}
	}
	if udpAnswered.Load() || len(binds) == 0 {
		stopTCP() // TCP only matters when UDP is silent, and a server was asked
	}
	return binds, <-tcpDone, unresolved
}

// tcpFallback starts STUN over TCP when no UDP answer came within
// tcpAfter. When TCP answers and UDP still does not, UDP gets at least a
// second (ten TCP round trips if slower) before stopUDP calls it blocked.
func (r *typeRun) tcpFallback(ctx context.Context, udpAnswered *atomic.Bool, stopUDP context.CancelFunc) []nat.TestResult {
	select {
	case <-time.After(tcpAfter):
	case <-ctx.Done():
		return nil
	}
	if udpAnswered.Load() {
		return nil
	}
	r.cfg.logf("no UDP answer after %v: trying STUN over TCP", tcpAfter)
	tcp := r.tcpRound(ctx)
	if countReplied(tcp) > 0 && !udpAnswered.Load() {
		select {
		case <-time.After(max(udpGraceAfterTCP, 10*maxRTT(tcp))):
			stopUDP()
		case <-ctx.Done():
		}
	}
	return tcp
}

// pickPrimary chooses the server for the RFC 5780 tests: the first (in
// the user's order) whose OTHER-ADDRESS is genuine, else the first that
// answered at all.
func pickPrimary(binds []nat.TestResult) (int, bool) {
	first := -1
	for i, b := range binds {
		if !b.Replied || b.ErrorCode != 0 || !b.Public().IsValid() {
			continue
		}
		if validOther(b.To, b.OtherAddress) {
			return i, true
		}
		if first < 0 {
			first = i
		}
	}
	return first, first >= 0
}

// validOther reports whether OTHER-ADDRESS can serve behaviour tests: of
// the same family, with its own IP and its own port (RFC 5780 7.4).
func validOther(prim, o netip.AddrPort) bool {
	return o.IsValid() && o.Addr().Unmap().Is4() == prim.Addr().Unmap().Is4() &&
		o.Addr().Unmap() != prim.Addr().Unmap() && o.Port() != prim.Port() && !o.Addr().IsUnspecified()
}

// exchange runs one paced test on an existing socket.
func (r *typeRun) exchange(ctx context.Context, c *stunclient.Conn, name nat.TestName, to netip.AddrPort, change nat.ChangeFlags, expect netip.AddrPort) nat.TestResult {
	var accept func(netip.AddrPort) bool
	if change != 0 {
		// Accept a reply from anywhere: where it came from is the finding.
		accept = func(netip.AddrPort) bool { return true }
	}
	start, end := time.Now(), r.windowEnd()
	resp, n, w, err := paced(ctx, c, send{to: to, change: change, accept: accept, copies: silenceCopies,
		gaps: func(int) time.Duration { return r.gap() }, waitEnd: end, witness: change != 0})
	t := result(name, c.LocalAddr(), to, change, resp, n, err)
	t.Expect, t.Witnessed = expect, w
	if !t.Replied {
		t.Listened = min(time.Since(start), end.Sub(start))
	}
	return t
}

func (r *typeRun) windowEnd() time.Time {
	end := time.Now().Add(r.window())
	if end.After(r.deadline) {
		return r.deadline
	}
	return end
}

// fresh runs a CHANGE-REQUEST test from new sockets, so no earlier test
// has opened the NAT's filter for them. The request itself opens the
// filter for the primary address only.
//
// Two sockets run the test at once and a reply to either counts: a NAT
// mapping collision (an old conntrack entry holding this public port for
// the alternate address) or loss on one socket then cannot fake silence.
// The sockets bind to random ports above the kernel's ephemeral range
// (filterPortLo-filterPortHi), where no earlier natcheck socket ever
// contacted the alternate address: NAT state left by an earlier run cannot
// open their filter and fake a reply either.
func (r *typeRun) fresh(ctx context.Context, name nat.TestName, to netip.AddrPort, change nat.ChangeFlags, expect netip.AddrPort) nat.TestResult {
	return r.pair(func() nat.TestResult {
		c, err := r.listenFilterPort(ctx)
		if err != nil {
			return nat.TestResult{Name: name, To: to, Change: change, Expect: expect, Err: err}
		}
		defer c.Close()
		r.opened("filtering", c.LocalAddr())
		return r.exchange(ctx, c, name, to, change, expect)
	})
}

// pair runs a test twice at once and keeps the run that got a reply (or
// the first); Attempts counts both.
func (r *typeRun) pair(test func() nat.TestResult) nat.TestResult {
	second := make(chan nat.TestResult, 1)
	go func() { second <- test() }()
	a := test()
	b := <-second
	if !a.Replied && b.Replied {
		a, b = b, a
	}
	a.Attempts += b.Attempts
	a.Witnessed += b.Witnessed
	return a
}

// Ports for the filtering tests' sockets: above Linux's default ephemeral
// range (32768-60999), so never a port the other tests (or earlier runs'
// other tests) used to contact the alternate address.
const (
	filterPortLo = 61000
	filterPortHi = 65535
)

func (r *typeRun) listenFilterPort(ctx context.Context) (*stunclient.Conn, error) {
	for range 8 {
		p := filterPortLo + rand.IntN(filterPortHi-filterPortLo+1)
		c, err := stunclient.Listen(ctx, r.cfg.Net, r.cfg.Family, r.cfg.laddr(uint16(p)))
		if err == nil {
			return c, nil
		}
	}
	// Every try was taken (or binding is restricted): any port will do.
	return stunclient.Listen(ctx, r.cfg.Net, r.cfg.Family, r.cfg.laddr(0))
}

// verify proves the server honours CHANGE-REQUEST: a fresh socket talks
// to OTHER-ADDRESS (opening its filter there on any cone NAT) and asks the
// primary for a reply from OTHER-ADDRESS. The filter opens as soon as the
// first request passes the NAT, long before any changed reply can come
// back, so the change leg starts openLead later without waiting a round
// trip; both legs keep sending copies on their own pacing.
func (r *typeRun) verify(ctx context.Context, prim, other netip.AddrPort) nat.TestResult {
	c, err := stunclient.Listen(ctx, r.cfg.Net, r.cfg.Family, r.cfg.laddr(0))
	if err != nil {
		return nat.TestResult{Name: nat.TestFilterVerify, To: prim, Expect: other, Err: err}
	}
	defer c.Close()
	r.opened("verify", c.LocalAddr())
	opened := make(chan nat.TestResult, 1)
	go func() { opened <- r.exchange(ctx, c, nat.TestFilterVerify, other, 0, netip.AddrPort{}) }()
	select {
	case <-time.After(openLead):
	case <-ctx.Done():
	}
	t := r.exchange(ctx, c, nat.TestFilterVerify, prim, nat.ChangeIP|nat.ChangePort, other)
	if open := <-opened; !t.Replied && !open.Replied {
		t.Err = errOtherSilent
	}
	return t
}

// allRefused is a refusal (stunclient.ErrRefused) when every server
// refused the binding round, nil otherwise.
func allRefused(binds []nat.TestResult) error {
	var err error
	for _, b := range binds {
		if !errors.Is(b.Err, stunclient.ErrRefused) {
			return nil
		}
		err = b.Err
	}
	return err
}

// errOtherSilent is the verify test's error when neither leg got a reply.
var errOtherSilent = errors.New("OTHER-ADDRESS did not answer either")

// result turns an engine answer into a test observation.
func result(name nat.TestName, local, to netip.AddrPort, change nat.ChangeFlags, resp stunclient.Response, n int, err error) nat.TestResult {
	t := nat.TestResult{Name: name, Local: local, To: to, Change: change, Attempts: n}
	if err != nil {
		// A refusal (ICMP port unreachable) is no reply too, but says why.
		if errors.Is(err, stunclient.ErrRefused) || !errors.Is(err, stunclient.ErrNoResponse) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Err = err
		}
		return t
	}
	t.Replied, t.From, t.RTT = true, resp.From, resp.RTT
	t.XORMapped, t.Mapped, t.OtherAddress, t.ErrorCode = resp.XORMapped, resp.Mapped, resp.OtherAddress, resp.ErrorCode
	if !t.OtherAddress.IsValid() {
		// RFC 3489 servers name it CHANGED-ADDRESS.
		t.OtherAddress = resp.ChangedAddress
	}
	return t
}

func countReplied(ts []nat.TestResult) int {
	n := 0
	for _, t := range ts {
		if t.Replied {
			n++
		}
	}
	return n
}

// maxRTT is the slowest measured round trip; the waits derive from it.
func maxRTT(ts []nat.TestResult) time.Duration {
	var m time.Duration
	for _, t := range ts {
		if t.Replied && t.RTT > m {
			m = t.RTT
		}
	}
	if m == 0 {
		m = firstGap // only retransmitted answers: no unambiguous RTT (Karn)
	}
	return m
}

// summary is one progress line for --verbose.
func summary(t nat.TestResult) string {
	switch {
	case t.Err != nil:
		return fmt.Sprintf("%s: %v", t.Name, t.Err)
	case !t.Replied:
		return fmt.Sprintf("%s: no reply from %s after %d copies", t.Name, t.To, t.Attempts)
	case !t.Public().IsValid():
		// e.g. hairpin: the datagram itself came back, no mapped address
		return fmt.Sprintf("%s: reply from %s after %v", t.Name, t.From, t.RTT.Round(time.Millisecond/10))
	default:
		return fmt.Sprintf("%s: reply from %s after %v, saw %s", t.Name, t.From, t.RTT.Round(time.Millisecond/10), t.Public())
	}
}

// socketsFrom is the sockets the run opened, a wildcard address shown as
// the route's source address, which the packets really leave from.
func (r *typeRun) socketsFrom(route netip.Addr) []Socket {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.sockets)
	for i, s := range out {
		if (!s.Local.Addr().IsValid() || s.Local.Addr().IsUnspecified()) && route.IsValid() {
			out[i].Local = netip.AddrPortFrom(route, s.Local.Port())
		}
	}
	return out
}

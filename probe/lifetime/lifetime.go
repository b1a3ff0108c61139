package lifetime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v4"
)

// Method is how Measure tests a mapping.
type Method string

// The methods.
const (
	// MethodResponsePort is RFC 5780 section 4.6: a second socket asks the
	// server to answer to the idle socket's mapping through RESPONSE-PORT,
	// so the idle socket itself never sends (and never refreshes its
	// mapping) until the answer tells whether the mapping lives.
	MethodResponsePort Method = "rfc5780-response-port"
	// MethodPortChange is the fallback for servers without
	// RESPONSE-PORT behind a NAT that does not keep ports: the idle socket
	// asks the server again; a different mapped address means the old
	// mapping expired and a new one was made. It assumes a re-created
	// mapping gets another port, which holds for random and sequential
	// port allocation, not for NATs that derive the port from the internal
	// endpoint.
	MethodPortChange Method = "mapped-port-change"
)

// Outcome is what a lifetime measurement found (Result.Result).
type Outcome string

// The outcomes.
const (
	Measured       Outcome = "measured"         // alive at Lower, gone at Upper
	LongerThanMax  Outcome = "longer-than-max"  // still alive at the longest idle time probed
	ShorterThanMin Outcome = "shorter-than-min" // already gone at the shortest idle time probed
	Unknown        Outcome = "unknown"          // no probe could decide (see Reason)
	// NoNAT: the servers see this host's own address, so there is no NAT
	// mapping whose lifetime could be measured.
	NoNAT Outcome = "no-nat"
)

// ProbeState is what became of one lifetime probe.
type ProbeState string

// The states of a probe.
const (
	ProbeAlive   ProbeState = "alive"   // the answer reached the idle socket
	ProbeExpired ProbeState = "expired" // the server answered the control request but the idle socket heard nothing
	ProbeSkipped ProbeState = "skipped" // not run: a shorter idle time had already expired, or the run ended
	ProbeFailed  ProbeState = "failed"  // the server did not answer the control request; proves nothing
)

// RPSupport is a server's RESPONSE-PORT support (RFC 5780 section 7.5).
type RPSupport string

// The degrees of RESPONSE-PORT support.
const (
	RPSupported RPSupport = "supported"   // the answer came to the port asked for
	RPIgnored   RPSupport = "ignored"     // the answer came to the requesting socket
	RPRefused   RPSupport = "error-reply" // the server answered with an error (420: unknown attribute)
	RPNoAnswer  RPSupport = "no-answer"
	// RPNotChecked is the zero value: the server was not checked (not
	// waited for once an earlier one was chosen, or its name did not
	// resolve), so its support is unknown.
	RPNotChecked RPSupport = ""
)

// Defaults of Options.
const (
	DefaultMin     = time.Second
	DefaultMax     = 2 * time.Minute
	DefaultSockets = 32
	maxSockets     = 256 // each socket holds one NAT mapping: stay modest
)

// Budget is how long Measure may need with Max = max: the
// longest idle time, plus its set-up round and the confirmation of the
// last expiry (a second or two in the lab; the rest is margin).
func Budget(max time.Duration) time.Duration { return max + 5*time.Second }

// Options configure Measure.
type Options struct {
	Servers []stunclient.Server // tried in order; the first that honours RESPONSE-PORT is used
	Family  stunclient.Family
	Net     transport.Net // nil: the host's network
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	// Min and Max bound the idle times probed; Max bounds the run's length.
	Min, Max time.Duration
	// Sockets is the number of mappings probed at once in each round.
	Sockets int
	// Rounds > 1 re-probes between the bounds found, with fresh mappings;
	// each round costs up to Upper again.
	Rounds int
	// Established makes each mapping exchange twice, 2.5 s apart, before
	// idling, as a flow in use does; NATs may keep such mappings longer
	// than one that saw a single exchange.
	Established bool
	Logf        func(format string, args ...any) // progress for --verbose; may be nil
	// OwnAddr tells whether a mapped address is one of this host's own
	// (no NAT, nothing to measure); nil asks the host's interfaces. Tests
	// that simulate a NAT on loopback say no.
	OwnAddr func(netip.Addr) bool
}

// Probe is one idle mapping and what became of it.
type Probe struct {
	Round  int
	Target time.Duration // idle time aimed at
	Idle   time.Duration // idle time actually tested, at the NAT (estimated)
	State  ProbeState
	Mapped netip.AddrPort // the mapping that was left idle
}

// Server is one server's RESPONSE-PORT check.
type Server struct {
	Server    stunclient.Server
	Address   netip.AddrPort
	Support   RPSupport
	ErrorCode int
	Err       error
	// What the plain binding before the check showed: the mapping, the
	// socket's own port (equal ports: the NAT keeps ports), the RTT.
	Mapped    netip.AddrPort
	LocalPort uint16
	RTT       time.Duration
}

// Result is how long an idle UDP mapping survives.
type Result struct {
	Family      stunclient.Family
	Method      Method
	Established bool           // mappings exchanged twice before idling (Options.Established)
	Server      netip.AddrPort // the server used; zero when none could be
	Result      Outcome
	// The mapping survived Lower of idleness and was gone after Upper.
	// Lower is 0 when no probe survived; Upper is 0 when none expired.
	Lower, Upper time.Duration
	// Contradictions counts probes that expired at an idle time shorter
	// than one that survived: packet loss, or a NAT that ages mappings
	// unevenly. They are left out of the bounds.
	Contradictions int
	Rounds         int
	Probes         []Probe
	Servers        []Server
	Reason         string // why the result is unknown or partial
	Elapsed        time.Duration
}

// Estimate is the middle of the bounds, or 0 unless measured.
func (l *Result) Estimate() time.Duration {
	if l.Result != Measured {
		return 0
	}
	return (l.Lower + l.Upper) / 2
}

// Measure measures the lifetime of an idle UDP mapping. Each round
// opens many sockets at once, each creates a mapping with one server and
// then stays silent for a different time; at its time, a fresh socket asks
// the server (RESPONSE-PORT) to answer to that mapping. An answer that
// arrives proves the mapping alive. Round one spaces idle times
// geometrically over [Min, Max] and stops once two mappings expired (the
// second, next longer one is tested at once to confirm the first), so it
// takes about as long as the lifetime itself; further rounds narrow the
// bounds. It returns ErrNoAnswer when no server answered at all, and the
// context's error only when it was cancelled (a deadline gives a partial
// answer saying so).
func Measure(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{Family: o.Family, Method: MethodResponsePort, Result: Unknown, Established: o.Established}
	defer func() { res.Elapsed = time.Since(start) }()

	srv, rtt, servers := pickResponsePortServer(ctx, o)
	res.Servers = servers
	if own := ownMapped(o, servers); own.IsValid() {
		res.Result = NoNAT
		res.Reason = fmt.Sprintf("the servers see this host's own address %s", own)
		return res, nil
	}
	method := MethodResponsePort
	if !srv.IsValid() {
		if ctx.Err() == context.Canceled {
			return res, ctx.Err()
		}
		if !anyAnswered(servers) {
			return res, noAnswerLifetime(servers)
		}
		fallback, ok := portChangeServer(servers)
		if !ok {
			res.Reason = "no server honours RESPONSE-PORT (RFC 5780), and this NAT keeps ports, so a re-created mapping cannot be told from a live one"
			return res, nil
		}
		method, srv, rtt = MethodPortChange, fallback.Address, fallback.RTT
		o.logf("lifetime: no server honours RESPONSE-PORT; the NAT changes ports (%d -> %d), so a port change tells an expiry",
			fallback.LocalPort, fallback.Mapped.Port())
	}
	res.Server, res.Method = srv, method
	o.logf("lifetime: using %s (RTT %v, method %s)", srv, rtt.Round(time.Microsecond), method)

	r := &lifetimeRun{o: o, server: srv, rtt: rtt, method: method}
	targets := geometric(o.Min, o.Max, o.Sockets)
	for round := 1; round <= o.Rounds && len(targets) > 0; round++ {
		res.Rounds = round
		o.logf("lifetime: round %d probes %d idle times from %v to %v", round, len(targets),
			targets[0].Round(time.Millisecond), targets[len(targets)-1].Round(time.Millisecond))
		res.Probes = append(res.Probes, r.round(ctx, round, targets)...)
		summarise(res)
		if ctx.Err() != nil || res.Result != Measured {
			break
		}
		targets = linear(res.Lower, res.Upper, o.Sockets)
	}
	if err := ctx.Err(); err != nil {
		if err == context.Canceled {
			return res, err
		}
		res.Reason = "the run's time limit ended the measurement early"
	}
	return res, nil
}

// ownMapped is the mapped address of an answering server when it is one
// of this host's own addresses (no NAT on the path), else zero.
func ownMapped(o Options, servers []Server) netip.Addr {
	isOwn := o.OwnAddr
	if isOwn == nil {
		isOwn = hostAddrs(o.Net)
	}
	for _, s := range servers {
		if a := s.Mapped.Addr().Unmap(); s.Mapped.IsValid() && isOwn(a) {
			return a
		}
	}
	return netip.Addr{}
}

// hostAddrs tells whether an address is on one of n's interfaces.
func hostAddrs(n transport.Net) func(netip.Addr) bool {
	own := map[netip.Addr]bool{}
	ifs, _ := n.Interfaces()
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				own[p.Addr().Unmap()] = true
			} else if ip, err := netip.ParseAddr(a.String()); err == nil {
				own[ip.Unmap()] = true
			}
		}
	}
	return func(a netip.Addr) bool { return own[a] }
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Servers) == 0 {
		return o, errors.New("no STUN servers given")
	}
	if o.Family == 0 {
		o.Family = stunclient.IPv4
	}
	var err error
	if o.Net, err = stunclient.NetOrReal(o.Net); err != nil {
		return o, err
	}
	if o.Min <= 0 {
		o.Min = DefaultMin
	}
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.Max < o.Min {
		return o, fmt.Errorf("lifetime: max %v is below min %v", o.Max, o.Min)
	}
	if o.Sockets <= 0 {
		o.Sockets = DefaultSockets
	}
	if o.Sockets < 2 || o.Sockets > maxSockets {
		return o, fmt.Errorf("lifetime: sockets must be 2-%d, got %d", maxSockets, o.Sockets)
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	return o, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// geometric spaces n idle times from lo to hi with a constant ratio, so the
// relative resolution is the same for a 20 s and a 5 min NAT timeout.
func geometric(lo, hi time.Duration, n int) []time.Duration {
	if n == 1 || lo == hi {
		return []time.Duration{hi}
	}
	ratio := math.Pow(float64(hi)/float64(lo), 1/float64(n-1))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(float64(lo) * math.Pow(ratio, float64(i)))
	}
	out[n-1] = hi
	return out
}

// linear spaces n idle times strictly between lo and hi.
func linear(lo, hi time.Duration, n int) []time.Duration {
	step := (hi - lo) / time.Duration(n+1)
	if step < time.Millisecond {
		return nil
	}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = lo + step*time.Duration(i+1)
	}
	return out
}

// summarise derives the bounds from every probe so far.
func summarise(res *Result) {
	var lower, upper time.Duration
	alive, expired := false, false
	for _, p := range res.Probes {
		if p.State == ProbeAlive {
			alive = true
			lower = max(lower, p.Idle)
		}
	}
	res.Contradictions = 0
	for _, p := range res.Probes {
		if p.State != ProbeExpired {
			continue
		}
		if alive && p.Idle <= lower {
			res.Contradictions++
			continue
		}
		if !expired || p.Idle < upper {
			upper = p.Idle
		}
		expired = true
	}
	res.Lower, res.Upper = lower, upper
	switch {
	case alive && expired:
		res.Result = Measured
	case alive:
		res.Result = LongerThanMax
	case expired:
		res.Result = ShorterThanMin
	default:
		res.Result = Unknown
		res.Reason = "no probe could decide: the server stopped answering"
	}
}

// lifetimeRun is one measurement against one server.
type lifetimeRun struct {
	o      Options
	server netip.AddrPort
	rtt    time.Duration
	method Method
}

// probeRTO paces the RESPONSE-PORT request: a few round trips, so that a
// lost datagram is recovered quickly and the idle time a retransmission
// tests stays close to the one aimed at.
func (r *lifetimeRun) probeRTO() time.Duration {
	return min(max(4*r.rtt, 50*time.Millisecond), 500*time.Millisecond)
}

// idleMapping is a socket whose mapping is left alone.
type idleMapping struct {
	conn      *stunclient.Conn
	mapped    netip.AddrPort
	refreshed time.Time // when the mapping last saw traffic (the reply)
}

// round opens one mapping per target, lets each idle for its target and
// then tests it. Once two mappings expired, longer targets are skipped: the
// round ends about when the lifetime does.
func (r *lifetimeRun) round(ctx context.Context, round int, targets []time.Duration) []Probe {
	probes := make([]Probe, len(targets))
	maps := make([]*idleMapping, len(targets))
	var wg sync.WaitGroup
	for i := range targets {
		probes[i] = Probe{Round: round, Target: targets[i], State: ProbeFailed}
		wg.Add(1)
		go func() {
			defer wg.Done()
			maps[i] = r.openMapping(ctx)
		}()
	}
	wg.Wait()
	defer func() {
		for _, m := range maps {
			if m != nil {
				m.conn.Close()
			}
		}
	}()

	st, waiters := newRoundState(targets)
	for i := range targets {
		if maps[i] == nil {
			continue
		}
		probes[i].Mapped = maps[i].mapped
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.probe(ctx, maps[i], &probes[i], st, waiters[i])
		}()
	}
	wg.Wait()
	return probes
}

func (r *lifetimeRun) openMapping(ctx context.Context) *idleMapping {
	c, err := stunclient.Listen(ctx, r.o.Net, r.o.Family, "")
	if err != nil {
		return nil
	}
	exchanges := 1
	if r.o.Established {
		exchanges = 2
	}
	var resp stunclient.Response
	for k := range exchanges {
		if k > 0 && !sleepCtx(ctx, establishGap) {
			c.Close()
			return nil
		}
		resp, err = c.Do(ctx, stunclient.Request{To: r.server})
		if err != nil || resp.ErrorCode != 0 || !resp.PublicAddr().IsValid() {
			c.Close()
			return nil
		}
	}
	return &idleMapping{conn: c, mapped: resp.PublicAddr(), refreshed: time.Now()}
}

// establishGap separates the two exchanges of an established mapping.
// Linux treats a UDP flow as a stream (nf_conntrack_udp_timeout_stream)
// once it still exchanges two seconds after its first packet; other NATs
// also reward a flow that saw traffic both ways more than once.
const establishGap = 2500 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// expiriesToStop is how many expired mappings end a round early. One could
// be a fluke (every retransmission lost); two in a row are the NAT's timer.
const expiriesToStop = 2

// roundState lets the probes of a round end it once mappings expire. After
// an expiry that is not yet confirmed, the mapping with the next longer
// target is tested at once instead of at its time: it has idled at least as
// long, so it confirms (or contradicts) the expiry within a round trip.
type roundState struct {
	mu      sync.Mutex
	expired []time.Duration // targets seen expired
	stopAt  time.Duration   // targets above this are skipped, once stop is closed
	stop    chan struct{}
	waiting []*waiter // probes not yet started, by target
}

type waiter struct {
	target time.Duration
	fire   chan struct{} // closed to start the probe now
	gone   bool          // started or ended
}

func newRoundState(targets []time.Duration) (*roundState, []*waiter) {
	s := &roundState{stop: make(chan struct{})}
	ws := make([]*waiter, len(targets))
	for i, t := range targets {
		ws[i] = &waiter{target: t, fire: make(chan struct{})}
	}
	s.waiting = slices.Clone(ws)
	slices.SortFunc(s.waiting, func(a, b *waiter) int { return cmp.Compare(a.target, b.target) })
	return s, ws
}

// start marks w as no longer waiting.
func (s *roundState) start(w *waiter) {
	s.mu.Lock()
	w.gone = true
	s.mu.Unlock()
}

func (s *roundState) addExpired(target time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = append(s.expired, target)
	if len(s.expired) == expiriesToStop {
		slices.Sort(s.expired)
		s.stopAt = s.expired[expiriesToStop-1]
		close(s.stop)
		return
	}
	if len(s.expired) > expiriesToStop {
		return
	}
	for _, w := range s.waiting {
		if !w.gone && w.target > target {
			w.gone = true
			close(w.fire)
			return
		}
	}
}

func (s *roundState) skip(target time.Duration) bool {
	select {
	case <-s.stop:
		s.mu.Lock()
		defer s.mu.Unlock()
		return target > s.stopAt
	default:
		return false
	}
}

// probe waits until m has idled for p.Target (or is called early to confirm
// an expiry), then asks, from a fresh socket, for an answer to m's mapping.
func (r *lifetimeRun) probe(ctx context.Context, m *idleMapping, p *Probe, st *roundState, w *waiter) {
	defer st.start(w)
	// The answer crosses the NAT about one RTT after the request leaves.
	timer := time.NewTimer(time.Until(m.refreshed.Add(p.Target - r.rtt)))
	defer timer.Stop()
	stop := st.stop
wait:
	for {
		select {
		case <-timer.C:
			break wait
		case <-w.fire:
			break wait
		case <-stop:
			if st.skip(p.Target) {
				p.State = ProbeSkipped
				return
			}
			stop = nil
		case <-ctx.Done():
			p.State = ProbeSkipped
			return
		}
	}
	st.start(w)
	if st.skip(p.Target) {
		p.State = ProbeSkipped
		return
	}
	// A probe still deciding when the round ends (two shorter idle times
	// expired) cannot move the bounds: it is cut short and skipped, so
	// the round ends with its second expiry instead of running on for the
	// retransmissions of every probe that started meanwhile.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-st.stop:
			if st.skip(p.Target) {
				cancel()
			}
		case <-pctx.Done():
		}
	}()
	cut := func() bool { return pctx.Err() != nil && ctx.Err() == nil }
	if r.method == MethodPortChange {
		r.probeByPortChange(pctx, m, p, st)
		if p.State == ProbeFailed && cut() {
			p.State = ProbeSkipped
		}
		return
	}
	y, err := stunclient.Listen(pctx, r.o.Net, r.o.Family, "")
	if err != nil {
		return
	}
	defer y.Close()
	out := askResponsePort(pctx, m.conn, y, r.server, m.mapped.Port(), r.probeRTO(), 3)
	if out.support != RPSupported && cut() {
		p.State = ProbeSkipped
		return
	}
	switch out.support {
	case RPSupported:
		p.State, p.Idle = ProbeAlive, out.sent.Sub(m.refreshed)+r.rtt
	case RPNoAnswer:
		// Silence means expiry only if the server is still answering:
		// ask it plainly from the same fresh socket.
		if _, err := y.Do(pctx, stunclient.Request{To: r.server, RTO: r.probeRTO(), Attempts: 3}); err != nil {
			if cut() {
				p.State = ProbeSkipped
			}
			return
		}
		p.State, p.Idle = ProbeExpired, out.sent.Sub(m.refreshed)+r.rtt
		st.addExpired(p.Target)
	}
}

// probeByPortChange asks the server again from the idle socket itself: the
// same mapped address means the mapping lived, another means the NAT had
// dropped it and made a new one. The request reaches the NAT at once, so
// the idle time is taken when it leaves.
func (r *lifetimeRun) probeByPortChange(ctx context.Context, m *idleMapping, p *Probe, st *roundState) {
	sent := time.Now()
	resp, err := m.conn.Do(ctx, stunclient.Request{To: r.server, RTO: r.probeRTO(), Attempts: 3})
	if err != nil || resp.ErrorCode != 0 || !resp.PublicAddr().IsValid() {
		return
	}
	p.Idle = sent.Sub(m.refreshed)
	if resp.PublicAddr() == m.mapped {
		p.State = ProbeAlive
		return
	}
	p.State = ProbeExpired
	st.addExpired(p.Target)
}

// pickResponsePortServer checks every server at once and returns the first,
// in the order given, that honours RESPONSE-PORT, with its RTT. The servers
// run under the gather.Survey grace: once any has answered its plain
// binding, one that has not within the grace is given up ("no answer"), so
// a dead server early in the list never costs the run's timeout. Servers
// that answered in time are waited for in order.
func pickResponsePortServer(ctx context.Context, o Options) (netip.AddrPort, time.Duration, []Server) {
	tasks := make([]gather.Task[Server], len(o.Servers))
	for i, s := range o.Servers {
		tasks[i] = func(ctx context.Context, answered func(gather.Answer)) Server {
			return checkResponsePort(ctx, o, s, func(rtt time.Duration) { answered(gather.Answer{RTT: rtt}) })
		}
	}
	rs := gather.Run(ctx, tasks, gather.Options[Server]{Grace: gather.Survey, Enough: firstSupported})
	out := make([]Server, len(rs))
	chosen := -1
	for i, r := range rs {
		out[i] = r.Value
		switch {
		case chosen < 0 && r.Value.Support == RPSupported:
			chosen = i
		case r.State == gather.GaveUp:
			out[i] = Server{Server: r.Value.Server, Address: r.Value.Address, Support: RPNoAnswer, Err: gather.ErrGaveUp}
		case chosen >= 0 && r.Value.Support != RPSupported:
			// Not waited for once an earlier server was chosen: unknown.
			out[i] = Server{Server: r.Value.Server, Address: r.Value.Address}
		}
	}
	if chosen < 0 {
		return netip.AddrPort{}, 0, out
	}
	return out[chosen].Address, out[chosen].RTT, out
}

// firstSupported holds once the first server, in the order given, that
// honours RESPONSE-PORT is known: every earlier one has finished without.
func firstSupported(rs []gather.Result[Server]) bool {
	for _, r := range rs {
		if r.State == gather.Running {
			return false
		}
		if r.State == gather.Finished && r.Value.Support == RPSupported {
			return true
		}
	}
	return false
}

// checkResponsePort makes one mapping and asks, from a second socket, for
// an answer to it at once: the RESPONSE-PORT exchange the measurement uses.
// bound is called once the plain binding has answered.
func checkResponsePort(ctx context.Context, o Options, s stunclient.Server, bound func(time.Duration)) Server {

	ls := Server{Server: s}
	addrs, err := s.Resolve(ctx, o.Resolver, o.Family)
	if err != nil {
		ls.Err = err
		return ls
	}
	ls.Address = addrs[0]
	x, err := stunclient.Listen(ctx, o.Net, o.Family, "")
	if err != nil {
		ls.Err = err
		return ls
	}
	defer x.Close()
	resp, err := x.Do(ctx, stunclient.Request{To: ls.Address})
	switch {
	case err != nil:
		ls.Support, ls.Err = RPNoAnswer, err
		return ls
	case resp.ErrorCode != 0 || !resp.PublicAddr().IsValid():
		ls.Support, ls.ErrorCode = RPRefused, resp.ErrorCode
		ls.Err = fmt.Errorf("binding answered with error %d and no mapped address", resp.ErrorCode)
		return ls
	}
	ls.Mapped, ls.LocalPort, ls.RTT = resp.PublicAddr(), x.LocalAddr().Port(), resp.RTT
	bound(resp.RTT)
	y, err := stunclient.Listen(ctx, o.Net, o.Family, "")
	if err != nil {
		ls.Err = err
		return ls
	}
	defer y.Close()
	rto := min(max(4*resp.RTT, 50*time.Millisecond), 500*time.Millisecond)
	rp := askResponsePort(ctx, x, y, ls.Address, resp.PublicAddr().Port(), rto, 4)
	ls.Support, ls.ErrorCode, ls.Err = rp.support, rp.errorCode, rp.err
	if ls.Support == RPNotChecked {
		ls.Support = RPNoAnswer
	}
	return ls
}

// portChangeServer picks, for the fallback method, the first server that
// answered a plain binding, provided the NAT changed the socket's port: a
// NAT that keeps ports would give a re-created mapping the old port again.
func portChangeServer(ss []Server) (Server, bool) {
	for _, s := range ss {
		if s.Mapped.IsValid() {
			return s, s.Mapped.Port() != s.LocalPort
		}
	}
	return Server{}, false
}

func anyAnswered(ss []Server) bool {
	for _, s := range ss {
		if s.Support != RPNotChecked && s.Support != RPNoAnswer {
			return true
		}
	}
	return false
}

func noAnswerLifetime(ss []Server) error {
	errs := make([]error, len(ss))
	for i, s := range ss {
		errs[i] = s.Err
	}
	if err := stunclient.AllUnresolved(errs); err != nil {
		return err
	}
	for _, s := range ss {
		if s.Err != nil {
			return fmt.Errorf("%w (%d asked; %v)", stunclient.ErrNoAnswer, len(ss), s.Err)
		}
	}
	return fmt.Errorf("%w (%d asked)", stunclient.ErrNoAnswer, len(ss))
}

// rpOutcome is the result of one RESPONSE-PORT exchange.
type rpOutcome struct {
	support   RPSupport // RPSupported (answer at the mapping), RPIgnored, RPRefused or RPNoAnswer
	sent      time.Time // transmission answered, or the last one when none was
	errorCode int
	err       error
}

// askResponsePort sends, from y, Binding requests to server whose
// RESPONSE-PORT is port (the mapped port of x), and reports where the
// answer went. Each transmission has its own transaction ID, so an answer
// tells exactly which transmission (and so which idle time) it belongs to.
// Only answers from server itself count: it is the one address x's mapping
// has talked to, so even an address-and-port-dependent filter lets it pass.
func askResponsePort(ctx context.Context, x, y *stunclient.Conn, server netip.AddrPort, port uint16, rto time.Duration, attempts int) rpOutcome {
	atX := make(chan stunclient.Received, attempts)
	atY := make(chan stunclient.Received, attempts)
	from := func(a netip.AddrPort) bool { return a == server }
	ids := make([][stun.TransactionIDSize]byte, 0, attempts)
	sent := make([]time.Time, 0, attempts)
	defer func() {
		x.Forget(ids)
		y.Forget(ids)
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k := range attempts {
		msg, err := stun.Build(stun.TransactionID, stun.BindingRequest, responsePort(port), stun.Fingerprint)
		if err != nil {
			return rpOutcome{err: err}
		}
		ids = append(ids, msg.TransactionID)
		x.Expect(msg.TransactionID, from, atX)
		y.Expect(msg.TransactionID, from, atY)
		sent = append(sent, time.Now())
		if err := y.WriteRaw(msg.Raw, server); err != nil {
			return rpOutcome{err: fmt.Errorf("send to %s: %w", server, err)}
		}
		wait := rto << k
		if k == attempts-1 {
			wait = 2 * rto << k
		}
		timer.Reset(wait)
	wait:
		for {
			select {
			case rep := <-atX:
				if rep.Msg.Type.Class != stun.ClassSuccessResponse {
					continue // only the requester should get errors; ignore
				}
				return rpOutcome{support: RPSupported, sent: sentAt(ids, sent, rep)}
			case rep := <-atY:
				o := rpOutcome{support: RPIgnored, sent: sentAt(ids, sent, rep)}
				if rep.Msg.Type.Class == stun.ClassErrorResponse {
					o.support = RPRefused
					o.errorCode = stunclient.ParseResponse(rep.Msg, rep.From).ErrorCode
					o.err = fmt.Errorf("RESPONSE-PORT refused with STUN error %d", o.errorCode)
				}
				return o
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return rpOutcome{err: ctx.Err(), sent: sent[len(sent)-1]}
			}
		}
	}
	return rpOutcome{support: RPNoAnswer, sent: sent[len(sent)-1],
		err: fmt.Errorf("%s: %w after %d attempts", server, stunclient.ErrNoResponse, attempts)}
}

// sentAt is when the transmission a reply answers was sent.
func sentAt(ids [][stun.TransactionIDSize]byte, sent []time.Time, rep stunclient.Received) time.Time {
	if i := slices.Index(ids, rep.Msg.TransactionID); i >= 0 {
		return sent[i]
	}
	return sent[len(sent)-1]
}

type responsePort uint16

// AddTo writes RESPONSE-PORT: the port, then two bytes of padding.
func (p responsePort) AddTo(m *stun.Message) error {
	m.Add(stun.AttrResponsePort, []byte{byte(p >> 8), byte(p), 0, 0})
	return nil
}

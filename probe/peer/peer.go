package peer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
)

// Role is this side's ICE role.
type Role string

// The ICE roles (RFC 8445 section 6.1.1).
const (
	Controlling Role = "controlling"
	Controlled  Role = "controlled"
)

// Defaults of Options.
const (
	DefaultPings   = 20
	DefaultTimeout = 5 * time.Second
	// NATTimeout bounds the quick NAT check, which runs while candidates
	// are gathered.
	NATTimeout = 2 * time.Second
	// GatherTimeout bounds each STUN server's answer while gathering.
	GatherTimeout = 2 * time.Second
	// GatherCap bounds gathering as a whole: a TURN server reached over
	// TLS that does not answer must not hold the meeting back. Candidates
	// found later are still used by this side.
	GatherCap    = 4 * time.Second
	pingInterval = 20 * time.Millisecond
)

// Options is one side's run.
type Options struct {
	Signal Signal
	// Servers are the STUN servers for server-reflexive candidates and
	// the quick NAT check; Resolver looks their names up (nil: the
	// system's).
	Servers  []stunclient.Server
	Resolver stunclient.Resolver
	// Family limits candidates (and the NAT check) to IPv4 or IPv6; zero
	// offers both, and the NAT check runs over IPv4.
	Family stunclient.Family
	// TURN servers, and their credentials and TLS settings (User,
	// Password, RootCAs, Insecure: cmd's turn flags).
	TURN        []turncheck.URI
	TURNOptions turncheck.Options
	Pings       int           // pings over the selected pair; 0 means DefaultPings
	Timeout     time.Duration // the ICE checks after meeting; 0 means DefaultTimeout
	// AwaitPeer, for the side that answers a ticket: the meeting ends
	// only when the other side has the answer, which this side learns
	// from its first connectivity check; Timeout runs from then, and the
	// check is awaited at most AwaitPeer. Zero: Timeout runs from the
	// answer.
	AwaitPeer time.Duration
	NoHost    bool // offer no host candidates
	// Loopback offers loopback host candidates (both sides on one host).
	Loopback bool
	// onlyIPs, when set, keeps the host candidates it accepts (unit
	// tests: loopback only, whatever else the machine has).
	onlyIPs func(net.IP) bool
	// RunType is the quick NAT check; nil means probe.RunType.
	RunType func(context.Context, probe.TypeOptions) (*probe.TypeResult, error)
	// NoPortMap skips asking the router for a port mapping (UPnP IGD,
	// NAT-PMP, PCP), which runs beside the NAT check; PortMapCheck is that
	// check, nil meaning portmap.Check.
	NoPortMap    bool
	PortMapCheck func(context.Context, portmap.Options) (*portmap.Report, error)
	Logf         func(format string, args ...any)
}

// Pair is a candidate pair, as the ICE agent last saw it.
type Pair struct {
	Local, Remote Candidate
	State         string // frozen, waiting, in-progress, failed, succeeded
	Nominated     bool
	RTT           time.Duration // of the last connectivity check; 0 when none
}

// Pings is the test of the selected pair.
type Pings struct {
	Sent, Received int
	RTT            time.Duration // mean round trip
	Loss           float64       // 1 - Received/Sent
}

// Side is what one side offered.
type Side struct {
	NAT        NATSummary
	TURN       bool
	PortMap    PortMap
	Candidates []Candidate
}

// Result is one side's view of the test.
type Result struct {
	Role    Role
	Meeting Meeting
	Outcome nat.P2P // direct, relayed or failed
	// Selected is the pair the connection used; nil when it failed.
	Selected      *Pair
	TimeToConnect time.Duration // from the meeting to the connection; 0 when failed
	Pings         Pings
	Predicted     nat.P2P
	Matched       tri.Bool // the outcome is the predicted one; unknown without a prediction
	Explanation   string   // why the outcome is what it is
	Finding       string   // when the outcome differs from the prediction, what that suggests
	Local, Remote Side
	Pairs         []Pair
	PeerLeft      bool // the peer said bye before the pings ended
	// NoCheckFromPeer: this side awaited the other's first connectivity
	// check (AwaitPeer) and none came: the other side did not start, or
	// none of its packets got through.
	NoCheckFromPeer bool
	// TURNProblems says, per TURN server that gave this side no relay
	// candidate, why (unreachable, certificate refused, allocation
	// refused); empty when every server gave one or none was given.
	TURNProblems []string
	Elapsed      time.Duration
	// Err is why the test could not run (meeting failed, interrupted);
	// a connection that failed is Outcome failed with Err nil.
	Err error
}

// A and B are the controlling and controlled sides' summaries, the names
// the explanation uses.
func (r *Result) AB() (a, b Side) {
	if r.Role == Controlling {
		return r.Local, r.Remote
	}
	return r.Remote, r.Local
}

// Run gathers this side's candidates while it runs the quick NAT check,
// meets the other side through o.Signal, runs the ICE checks for at most
// o.Timeout, pings the selected pair and classifies the outcome. It
// returns when both sides are done, when the checks time out or when ctx
// ends (then it says bye over the connected path, and Err is ctx's error).
func Run(ctx context.Context, o Options) *Result {
	start := time.Now()
	if o.Pings <= 0 {
		o.Pings = DefaultPings
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := &Result{Role: Controlled, Meeting: o.Signal.Meeting(), Outcome: nat.P2PFailed, Predicted: nat.P2PUnknown}
	if o.Signal.Controlling() {
		res.Role = Controlling
	}
	defer func() { res.Elapsed = time.Since(start) }()

	// The quick NAT check, concurrently with gathering.
	natc := make(chan NATSummary, 1)
	go func() { natc <- quickNAT(ctx, o, logf) }()
	pmc := make(chan PortMap, 1)
	go func() { pmc <- askPortMap(ctx, o, logf) }()

	relays, err := newRelayDialer(o.TURN, o.TURNOptions, logf)
	if err != nil {
		res.Err = err
		<-natc
		<-pmc
		return res
	}
	agent, err := newAgent(ctx, o, relays, logf)
	if err != nil {
		res.Err = err
		<-natc
		<-pmc
		return res
	}
	defer agent.Close()
	gathered := make(chan struct{})
	var once sync.Once
	if err := agent.OnCandidate(func(c ice.Candidate) {
		if c == nil {
			once.Do(func() { close(gathered) })
			return
		}
		logf("gathered %s", c)
	}); err != nil {
		res.Err = err
		<-natc
		<-pmc
		return res
	}
	if err := agent.GatherCandidates(); err != nil {
		res.Err = err
		<-natc
		<-pmc
		return res
	}
	gatherCap := time.NewTimer(GatherCap)
	select {
	case <-gathered:
	case <-gatherCap.C:
		logf("gathering still running after %v: meeting with the candidates found so far", GatherCap)
	case <-ctx.Done():
	}
	gatherCap.Stop()
	res.Local.NAT = <-natc
	res.Local.PortMap = <-pmc
	if ctx.Err() != nil {
		res.Err = ctx.Err()
		return res
	}
	local := &Ticket{NAT: res.Local.NAT, PortMap: res.Local.PortMap}
	if local.Ufrag, local.Pwd, err = agent.GetLocalUserCredentials(); err != nil {
		res.Err = err
		return res
	}
	cands, _ := agent.GetLocalCandidates()
	for _, c := range cands {
		if cc, ok := fromICE(c); ok && len(local.Candidates) < MaxCandidates {
			local.Candidates = append(local.Candidates, cc)
			// A side offers TURN when a relay answered, not when one was
			// asked: the prediction counts on the relay.
			local.TURN = local.TURN || cc.Type == Relay
		}
	}
	res.Local.TURN, res.Local.Candidates = local.TURN, local.Candidates
	res.TURNProblems = relays.Problems()
	if len(o.TURN) > 0 && !local.TURN && len(res.TURNProblems) == 0 {
		res.TURNProblems = []string{"no relay candidate from the TURN server (not reached or allocation refused within " +
			GatherCap.String() + "; natcheck turn names the cause, -v shows the ICE agent's)"}
	}

	remote, err := o.Signal.Exchange(ctx, local)
	if err != nil {
		res.Err = err
		return res
	}
	met := time.Now()
	logf("met the other side %v after start", met.Sub(start).Round(time.Millisecond))
	res.Remote = Side{NAT: remote.NAT, TURN: remote.TURN, PortMap: remote.PortMap, Candidates: remote.Candidates}
	a, b := res.AB()
	res.Predicted = nat.Predict(a.NAT.Type, b.NAT.Type, a.TURN, b.TURN)
	for _, c := range remote.Candidates {
		ic, err := ice.UnmarshalCandidate(c.sdp())
		if err != nil {
			logf("remote candidate %s: %v", c.Addr, err)
			continue
		}
		if err := agent.AddRemoteCandidate(ic); err != nil {
			logf("remote candidate %s: %v", c.Addr, err)
		}
	}

	checks, cancel := context.WithCancel(ctx)
	defer cancel()
	var w *checkWatch
	if o.AwaitPeer > 0 && res.Role == Controlled {
		w = &checkWatch{}
		go w.run(checks, agent, o, logf, cancel)
	} else {
		stop := time.AfterFunc(o.Timeout, cancel)
		defer stop.Stop()
	}
	var leftEarly atomic.Bool
	if w, ok := o.Signal.(LeaveWatcher); ok {
		// The other side may be interrupted before any path exists to say
		// bye over: the meeting place tells, and the checks end at once.
		watch, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			if w.WatchLeave(watch) == nil {
				leftEarly.Store(true)
				cancel()
			}
		}()
	}
	if o.AwaitPeer > 0 && res.Role == Controlled {
		logf("checking candidate pairs for at most %v from the other side's first check, awaited at most %v", o.Timeout, o.AwaitPeer)
	} else {
		logf("checking candidate pairs for at most %v", o.Timeout)
	}
	var conn *ice.Conn
	if res.Role == Controlling {
		conn, err = agent.Dial(checks, remote.Ufrag, remote.Pwd)
	} else {
		conn, err = agent.Accept(checks, remote.Ufrag, remote.Pwd)
	}
	if err != nil {
		res.Pairs = pairs(agent)
		if ctx.Err() != nil {
			sayBye(ctx, o.Signal)
			res.Err = ctx.Err()
			return res
		}
		logf("ICE checks: %v", err)
		res.PeerLeft = leftEarly.Load()
		res.NoCheckFromPeer = w != nil && w.silent()
		Classify(res)
		return res
	}
	if w != nil {
		met = w.firstCheck() // the other side had the answer then
	}
	res.TimeToConnect = time.Since(met)
	logf("connected after %v", res.TimeToConnect.Round(time.Millisecond))
	if p, err := agent.GetSelectedCandidatePair(); err == nil && p != nil {
		sel := &Pair{State: "succeeded", Nominated: true}
		sel.Local, _ = fromICE(p.Local)
		sel.Remote, _ = fromICE(p.Remote)
		res.Selected = sel
	}
	res.Pings, res.PeerLeft = ping(ctx, conn, o.Pings, o.Timeout)
	res.Pairs = pairs(agent)
	if res.Selected != nil {
		for _, p := range res.Pairs {
			if p.Local.Addr == res.Selected.Local.Addr && p.Remote.Addr == res.Selected.Remote.Addr {
				res.Selected.RTT = p.RTT
			}
		}
	}
	if ctx.Err() != nil {
		sayBye(ctx, o.Signal)
		res.Err = ctx.Err()
		return res
	}
	Classify(res)
	return res
}

// quickNAT runs the NAT type check for the ticket's summary.
func quickNAT(ctx context.Context, o Options, logf func(string, ...any)) NATSummary {
	s := NATSummary{Type: nat.TypeUnknown, Mapping: nat.MappingUnknown, Filtering: nat.FilteringUnknown}
	if len(o.Servers) == 0 {
		return s
	}
	run := o.RunType
	if run == nil {
		run = probe.RunType
	}
	fam := o.Family
	if fam == 0 {
		fam = stunclient.IPv4
	}
	ctx, cancel := context.WithTimeout(ctx, NATTimeout)
	defer cancel()
	r, err := run(ctx, probe.TypeOptions{Servers: o.Servers, Family: fam, Resolver: o.Resolver})
	if err != nil {
		logf("NAT check: %v", err)
	}
	if r == nil {
		return s
	}
	s.Type, s.Mapping, s.Filtering, s.Public = r.Type, r.Mapping, r.Filtering, r.Public
	if s.Type == "" {
		s.Type = nat.TypeUnknown
	}
	if s.Mapping == "" {
		s.Mapping = nat.MappingUnknown
	}
	if s.Filtering == "" {
		s.Filtering = nat.FilteringUnknown
	}
	return s
}

// portMapWait bounds each port-mapping protocol's first answer: the
// router is one hop away, and the check must end within NATTimeout.
const portMapWait = 700 * time.Millisecond

// askPortMap asks the router for a UDP port mapping by each protocol (and
// deletes it at once), so that a failed run can say whether a mapping is
// an option. Unchecked without a gateway, or when ctx ends first.
func askPortMap(ctx context.Context, o Options, logf func(string, ...any)) PortMap {
	if o.NoPortMap {
		return PortMap{}
	}
	check := o.PortMapCheck
	if check == nil {
		check = portmap.Check
	}
	ctx, cancel := context.WithTimeout(ctx, NATTimeout)
	defer cancel()
	r, err := check(ctx, portmap.Options{Wait: portMapWait})
	if err != nil || r == nil {
		logf("port mapping: %v", err)
		return PortMap{}
	}
	pm := PortMap{Checked: ctx.Err() == nil, Protocols: r.Granted()}
	logf("port mapping: checked %v, granted by %v", pm.Checked, pm.Protocols)
	return pm
}

// newAgent makes the ICE agent: UDP candidates of the family, srflx from
// the STUN servers (names looked up first, each under its own deadline),
// relay from the TURN servers.
func newAgent(ctx context.Context, o Options, relays *relayDialer, logf func(string, ...any)) (*ice.Agent, error) {
	var urls []*stun.URI
	fams := []stunclient.Family{stunclient.IPv4, stunclient.IPv6}
	if o.Family != 0 {
		fams = []stunclient.Family{o.Family}
	}
	lookup, cancel := context.WithTimeout(ctx, stunclient.LookupCap)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range o.Servers {
		for _, f := range fams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addrs, err := s.Resolve(lookup, o.Resolver, f)
				if err != nil {
					if f == fams[0] {
						logf("STUN server %s: %v", s, err)
					}
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, a := range addrs {
					urls = append(urls, &stun.URI{Scheme: stun.SchemeTypeSTUN, Host: a.Addr().String(), Port: int(a.Port()), Proto: stun.ProtoTypeUDP})
				}
			}()
		}
	}
	wg.Wait()
	for _, u := range o.TURN {
		su := &stun.URI{Scheme: stun.SchemeTypeTURN, Host: u.Host, Port: int(u.Port), Proto: stun.ProtoTypeUDP,
			Username: o.TURNOptions.User, Password: o.TURNOptions.Password}
		switch u.Transport {
		case turncheck.TCP:
			su.Proto = stun.ProtoTypeTCP
		case turncheck.TLS:
			su.Scheme, su.Proto = stun.SchemeTypeTURNS, stun.ProtoTypeTCP
		}
		urls = append(urls, su)
	}
	var nets []ice.NetworkType
	for _, f := range fams {
		if f == stunclient.IPv6 {
			nets = append(nets, ice.NetworkTypeUDP6)
		} else {
			nets = append(nets, ice.NetworkTypeUDP4)
		}
	}
	types := []ice.CandidateType{ice.CandidateTypeServerReflexive}
	if !o.NoHost {
		types = append(types, ice.CandidateTypeHost)
	}
	if len(o.TURN) > 0 {
		types = append(types, ice.CandidateTypeRelay)
	}
	disconnected := o.Timeout
	opts := []ice.AgentOption{
		ice.WithNetworkTypes(nets),
		ice.WithCandidateTypes(types),
		ice.WithUrls(urls),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithSTUNGatherTimeout(GatherTimeout),
		ice.WithFailedTimeout(o.Timeout + o.AwaitPeer),
		ice.WithDisconnectedTimeout(disconnected),
		ice.WithCheckInterval(100 * time.Millisecond),
		ice.WithProxyDialer(relays),
		ice.WithLoggerFactory(iceLog{logf: logf}),
	}
	if o.Loopback {
		opts = append(opts, ice.WithIncludeLoopback())
	}
	if o.onlyIPs != nil {
		opts = append(opts, ice.WithIPFilter(o.onlyIPs))
	}
	return ice.NewAgentWithOptions(opts...)
}

// fromICE is a pion candidate as a ticket's.
func fromICE(c ice.Candidate) (Candidate, bool) {
	ip, err := netip.ParseAddr(c.Address())
	if err != nil || c.Port() <= 0 || c.Port() > 65535 {
		return Candidate{}, false
	}
	cc := Candidate{Type: CandidateType(c.Type().String()), Protocol: c.NetworkType().NetworkShort(),
		Addr: netip.AddrPortFrom(ip.Unmap(), uint16(c.Port())), Priority: c.Priority(), Foundation: c.Foundation()}
	if len(cc.Foundation) > maxFoundationLen {
		cc.Foundation = cc.Foundation[:maxFoundationLen]
	}
	if r := c.RelatedAddress(); r != nil {
		if rip, err := netip.ParseAddr(r.Address); err == nil && r.Port > 0 && r.Port <= 65535 {
			cc.Related = netip.AddrPortFrom(rip.Unmap(), uint16(r.Port))
		}
	}
	switch cc.Type {
	case Host, Srflx, Prflx, Relay:
		return cc, cc.Protocol == "udp" || cc.Protocol == "tcp"
	}
	return cc, false
}

// sdp is the candidate as an ICE candidate attribute, for pion.
func (c Candidate) sdp() string {
	f := c.Foundation
	if f == "" || strings.ContainsAny(f, " \t") {
		f = "0"
	}
	s := fmt.Sprintf("candidate:%s 1 %s %d %s %d typ %s", f, c.Protocol, c.Priority, c.Addr.Addr(), c.Addr.Port(), c.Type)
	if c.Related.IsValid() {
		s += " raddr " + c.Related.Addr().String() + " rport " + strconv.Itoa(int(c.Related.Port()))
	}
	return s
}

// pairs is every candidate pair the agent knows, with its state.
func pairs(agent *ice.Agent) []Pair {
	byID := map[string]Candidate{}
	for _, get := range []func() ([]ice.Candidate, error){agent.GetLocalCandidates, agent.GetRemoteCandidates} {
		cs, _ := get()
		for _, c := range cs {
			if cc, ok := fromICE(c); ok {
				byID[c.ID()] = cc
			}
		}
	}
	var out []Pair
	for _, s := range agent.GetCandidatePairsStats() {
		l, lok := byID[s.LocalCandidateID]
		r, rok := byID[s.RemoteCandidateID]
		if !lok || !rok {
			continue
		}
		out = append(out, Pair{Local: l, Remote: r, State: s.State.String(), Nominated: s.Nominated,
			RTT: time.Duration(s.CurrentRoundTripTime * float64(time.Second))})
	}
	return out
}

// checkWatch watches the agent's pairs for the other side's first
// connectivity check (pion counts received checks per pair, also for a
// pair it made for a peer-reflexive candidate), and ends the checks
// o.Timeout after it, or at o.AwaitPeer when none came.
type checkWatch struct {
	mu       sync.Mutex
	first    time.Time // when it was seen
	lastNone time.Time // the last look that saw none
	seen     bool
	none     bool // AwaitPeer passed without a check
}

// run looks every 20 ms until the first check, AwaitPeer, or ctx's end;
// end cancels the checks.
func (w *checkWatch) run(ctx context.Context, agent *ice.Agent, o Options, logf func(string, ...any), end context.CancelFunc) {
	start := time.Now()
	deadline := time.NewTimer(o.AwaitPeer)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		for _, st := range agent.GetCandidatePairsStats() {
			if st.RequestsReceived > 0 {
				w.mu.Lock()
				w.first, w.seen = now, true
				w.mu.Unlock()
				logf("the other side's first check came %v after the answer", now.Sub(start).Round(time.Millisecond))
				time.AfterFunc(o.Timeout, end)
				return
			}
		}
		w.mu.Lock()
		w.lastNone = now
		w.mu.Unlock()
		select {
		case <-tick.C:
		case <-deadline.C:
			logf("no check from the other side within %v", o.AwaitPeer)
			w.mu.Lock()
			w.none = true
			w.mu.Unlock()
			end()
			return
		case <-ctx.Done():
			return
		}
	}
}

// silent reports whether AwaitPeer passed without a check.
func (w *checkWatch) silent() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.none
}

// firstCheck is when the first check came: when it was seen, or, when the
// connection came first, the last look that saw none (at most 20 ms
// earlier).
func (w *checkWatch) firstCheck() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen {
		return w.first
	}
	return w.lastNone
}

// sayBye tells the other side through the meeting place, when it can, that
// this one was interrupted (at most 500 ms, though ctx is done).
func sayBye(ctx context.Context, s Signal) {
	if l, ok := s.(Leaver); ok {
		bye, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
		_ = l.Leave(bye)
		cancel()
	}
}

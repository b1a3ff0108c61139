package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/stunclient"

	"github.com/pion/transport/v4"
)

// Status of one server in a run.
type Status string

const (
	StatusAnswered   Status = "answered"
	StatusNoAnswer   Status = "no-answer"   // asked, never answered before the run ended
	StatusRefused    Status = "refused"     // ICMP port unreachable: nothing listens there (Linux tells)
	StatusSkipped    Status = "skipped"     // still pending when agreeing answers made it unnecessary
	StatusUnresolved Status = "unresolved"  // the name gave no address of the family (Err says why: stunclient.ResolveError)
	StatusFailed     Status = "failed"      // e.g. the network is unreachable
	StatusBadReply   Status = "error-reply" // answered with a STUN error response
)

// ServerResult is what one server told us, or why it told us nothing.
type ServerResult struct {
	Server  stunclient.Server
	Address netip.AddrPort // the address asked; zero when resolution failed
	Status  Status
	RTT     time.Duration
	Mapped  netip.AddrPort
	Err     error
}

// WhoAmI is the answer to "which address does the internet see me as".
type WhoAmI struct {
	Family  stunclient.Family
	Public  netip.AddrPort // the mapped address most servers agree on
	Local   netip.AddrPort // the route's real source address and the socket's port
	NAT     bool           // Public's IP is not one of the host's own addresses
	Agreed  int            // servers that reported Public's IP
	Differ  int            // servers that reported another IP
	Servers []ServerResult // in the order given
	Ignored int64          // datagrams dropped as late, spoofed or malformed
	Elapsed time.Duration
}

// WhoAmIOptions configure RunWhoAmI.
type WhoAmIOptions struct {
	Servers []stunclient.Server
	Family  stunclient.Family
	Net     transport.Net // nil means the host's real network
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	// Bind is the local address (and port, when not 0) to ask from; zero
	// means any.
	Bind netip.AddrPort
}

// RunWhoAmI asks every server at once from one socket and answers as soon as
// two servers agree on the public IP, or when the others have had the
// gather.Confirm grace after the first answer. Dead servers therefore cost
// no more than that once a live one has answered. The run ends with ctx.
func RunWhoAmI(ctx context.Context, o WhoAmIOptions) (*WhoAmI, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("no STUN servers given")
	}
	n, err := stunclient.NetOrReal(o.Net)
	if err != nil {
		return nil, err
	}
	if o.Family == 0 {
		o.Family = stunclient.IPv4
	}
	start := time.Now()
	laddr := ""
	if o.Bind.IsValid() {
		laddr = o.Bind.String()
	}
	conn, err := stunclient.Listen(ctx, n, o.Family, laddr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	tasks := make([]gather.Task[ServerResult], len(o.Servers))
	for i, s := range o.Servers {
		tasks[i] = func(ctx context.Context, answered func(gather.Answer)) ServerResult {
			r := askServer(ctx, conn, o.Resolver, s, o.Family)
			if r.Status == StatusAnswered {
				answered(gather.Answer{RTT: r.RTT})
			}
			return r
		}
	}
	rs := gather.Run(ctx, tasks, gather.Options[ServerResult]{
		Grace:  gather.Confirm,
		Enough: func(rs []gather.Result[ServerResult]) bool { return tallyOf(rs).confirmed() },
	})
	results := make([]ServerResult, len(rs))
	for i, r := range rs {
		results[i] = r.Value
		if r.State == gather.GaveUp || r.State == gather.NotNeeded {
			if results[i].Status == StatusNoAnswer {
				// Still pending when the answers in hand made it unnecessary.
				results[i].Status, results[i].Err = StatusSkipped, nil
			}
		}
	}
	tally := tallyOf(rs)

	w := &WhoAmI{Family: o.Family, Servers: results, Ignored: conn.Ignored(), Elapsed: time.Since(start)}
	leader := tally.leader()
	if !leader.IsValid() {
		return w, noAnswerError(results, ctx.Err())
	}
	w.Agreed, w.Differ = tally.votes[leader], tally.total-tally.votes[leader]
	for _, r := range results { // the first answer from the agreed IP, for its port
		if r.Status == StatusAnswered && r.Mapped.Addr() == leader {
			w.Public = r.Mapped
			w.Local = localAddr(n, o.Family, r.Address, conn.LocalAddr())
			if o.Bind.IsValid() {
				w.Local = conn.LocalAddr() // bound: packets leave from it
			}
			break
		}
	}
	own, err := Interfaces(n)
	if err != nil {
		return w, err
	}
	w.NAT = !isOwnAddr(w.Public.Addr(), own)
	return w, nil
}

// localAddr pairs the route's source address with the socket's port.
func localAddr(n transport.Net, f stunclient.Family, to netip.AddrPort, bound netip.AddrPort) netip.AddrPort {
	src, err := RouteSource(n, f, to)
	if err != nil {
		return bound
	}
	return netip.AddrPortFrom(src, bound.Port())
}

func askServer(ctx context.Context, conn *stunclient.Conn, res stunclient.Resolver, s stunclient.Server, f stunclient.Family) ServerResult {
	r := ServerResult{Server: s}
	addrs, err := s.Resolve(ctx, res, f)
	if err != nil {
		r.Status, r.Err = StatusUnresolved, err
		if errors.Is(err, context.Canceled) {
			// Given up (or interrupted) while the name was resolving.
			r.Status = StatusNoAnswer
		}
		return r
	}
	r.Address = addrs[0]
	resp, err := conn.Do(ctx, stunclient.Request{To: r.Address})
	switch {
	case errors.Is(err, stunclient.ErrRefused):
		r.Status, r.Err = StatusRefused, err
	case errors.Is(err, stunclient.ErrNoResponse) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		r.Status, r.Err = StatusNoAnswer, err
	case err != nil:
		r.Status, r.Err = StatusFailed, err
	case resp.ErrorCode != 0:
		r.Status = StatusBadReply
		r.RTT = resp.RTT
		r.Err = fmt.Errorf("STUN error %d %s", resp.ErrorCode, resp.ErrorReason)
	case !resp.PublicAddr().IsValid():
		r.Status, r.RTT = StatusBadReply, resp.RTT
		r.Err = errors.New("reply carried no mapped address")
	default:
		r.Status, r.RTT, r.Mapped = StatusAnswered, resp.RTT, resp.PublicAddr()
	}
	return r
}

// noAnswerError summarises why nobody answered, in one line. When every
// server was a name and none resolved, DNS is the cause and says so.
func noAnswerError(results []ServerResult, ctxErr error) error {
	errs := make([]error, len(results))
	for i, r := range results {
		errs[i] = r.Err
	}
	if err := stunclient.AllUnresolved(errs); err != nil {
		return err
	}
	counts := map[Status]int{}
	var firstErr error
	for _, r := range results {
		counts[r.Status]++
		if firstErr == nil && r.Status != StatusNoAnswer && r.Err != nil {
			firstErr = r.Err
		}
	}
	var parts []string
	for _, s := range []Status{StatusNoAnswer, StatusRefused, StatusUnresolved, StatusFailed, StatusBadReply} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	msg := fmt.Sprintf("%d asked: %s", len(results), strings.Join(parts, ", "))
	if firstErr != nil && counts[StatusRefused] == len(results) {
		// Every server refused: the error says so (stunclient.ErrRefused).
		return fmt.Errorf("%w (%s; %w)", stunclient.ErrNoAnswer, msg, firstErr)
	}
	if firstErr != nil {
		msg += "; " + firstErr.Error()
	}
	return fmt.Errorf("%w (%s)", stunclient.ErrNoAnswer, msg)
}

// tallyOf counts the public IPs the finished servers reported, the fastest
// first (a tie goes to the faster); two names of one server address are one
// witness.
func tallyOf(rs []gather.Result[ServerResult]) *tally {
	t := newTally()
	counted := map[netip.AddrPort]bool{}
	byRTT := slices.Clone(rs)
	slices.SortStableFunc(byRTT, func(a, b gather.Result[ServerResult]) int { return cmp.Compare(a.Value.RTT, b.Value.RTT) })
	for _, r := range byRTT {
		v := r.Value
		if r.State == gather.Running || v.Status != StatusAnswered || counted[v.Address] {
			continue
		}
		counted[v.Address] = true
		t.add(v.Mapped.Addr())
	}
	return t
}

// tally counts mapped IPs reported by servers.
type tally struct {
	votes map[netip.Addr]int
	order []netip.Addr // first-counted order, to break ties by speed
	total int
}

func newTally() *tally { return &tally{votes: map[netip.Addr]int{}} }

func (t *tally) add(a netip.Addr) {
	if t.votes[a] == 0 {
		t.order = append(t.order, a)
	}
	t.votes[a]++
	t.total++
}

// leader is the IP with the most votes, the earliest on a tie.
func (t *tally) leader() netip.Addr {
	var best netip.Addr
	for _, a := range t.order {
		if t.votes[a] > t.votes[best] {
			best = a
		}
	}
	return best
}

// confirmed holds when two servers agree and no other IP matches them.
func (t *tally) confirmed() bool {
	l := t.leader()
	if t.votes[l] < 2 {
		return false
	}
	for a, v := range t.votes {
		if a != l && v >= t.votes[l] {
			return false
		}
	}
	return true
}

package probe

import (
	"context"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"

	"github.com/pion/transport/v4"
)

// ServerCheck is what one server showed of itself: reachability, round
// trip, and whether it supports RFC 5780 behaviour tests.
type ServerCheck struct {
	Server  stunclient.Server
	Address netip.AddrPort // zero when the name did not resolve
	Replied bool
	RTT     time.Duration
	Mapped  netip.AddrPort
	Other   netip.AddrPort // OTHER-ADDRESS (or RFC 3489 CHANGED-ADDRESS) it advertised
	// RFC5780 is "verified" (a CHANGE-REQUEST reply really came from
	// OTHER-ADDRESS), "advertised" (a valid OTHER-ADDRESS, unproven from
	// here), "invalid" (OTHER-ADDRESS without a second IP and port, or a
	// changed reply from the wrong place), "absent" (it answered without
	// OTHER-ADDRESS) or "unknown" (it never answered).
	RFC5780 nat.RFC5780
	Err     error // why it did not answer; nil when it did
}

// errSilent is a server check's error when the binding got no reply: it
// reads "no answer" and unwraps to the cause (stunclient.ErrNoResponse,
// or the context's error), if any.
type errSilent struct{ cause error }

func (errSilent) Error() string   { return "no answer" }
func (e errSilent) Unwrap() error { return e.cause }

// CheckServers probes every server at once, each from its own sockets,
// with the binding and verify tests of `natcheck type`, under the
// gather.Survey grace: a dead server costs at most that grace after
// another's answer, never ctx's whole time limit. With f zero, each server
// is checked in its own family: IPv6 literals over IPv6, the rest over IPv4.
//
// res looks up server names (nil: the system's resolver), each name inside
// its own task: a hanging lookup delays no other server.
func CheckServers(ctx context.Context, n transport.Net, res stunclient.Resolver, f stunclient.Family, servers []stunclient.Server) []ServerCheck {
	n, err := stunclient.NetOrReal(n)
	if err != nil {
		out := make([]ServerCheck, len(servers))
		for i, s := range servers {
			out[i] = ServerCheck{Server: s, RFC5780: nat.RFC5780Unknown, Err: err}
		}
		return out
	}
	tasks := make([]gather.Task[ServerCheck], len(servers))
	for i, s := range servers {
		fam := f
		if fam == 0 {
			fam = familyOf(s)
		}
		tasks[i] = func(ctx context.Context, answered func(gather.Answer)) ServerCheck {
			return checkServer(ctx, n, res, fam, s, func(rtt time.Duration) { answered(gather.Answer{RTT: rtt}) })
		}
	}
	rs := gather.Run(ctx, tasks, gather.Options[ServerCheck]{Grace: gather.Survey})
	out := make([]ServerCheck, len(rs))
	for i, r := range rs {
		out[i] = r.Value
		if err := r.State.Err(); err != nil && !out[i].Replied {
			out[i].Err = err
		}
	}
	return out
}

// familyOf is IPv6 for an IPv6 literal, else IPv4.
func familyOf(s stunclient.Server) stunclient.Family {
	if a, err := netip.ParseAddr(s.Host); err == nil && a.Is6() {
		return stunclient.IPv6
	}
	return stunclient.IPv4
}

// serverCheckRTTFloor is the least RTT the verify test of a server check
// paces itself by: its window is then at least a quarter second.
const serverCheckRTTFloor = 50 * time.Millisecond

// checkServer runs the checks of one server; replied is called once its
// binding answered.
func checkServer(ctx context.Context, n transport.Net, res stunclient.Resolver, f stunclient.Family, s stunclient.Server, replied func(time.Duration)) ServerCheck {
	sc := ServerCheck{Server: s, RFC5780: nat.RFC5780Unknown}
	addrs, err := s.Resolve(ctx, res, f)
	if err != nil {
		sc.Err = err
		return sc
	}
	sc.Address = addrs[0]
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultTypeTimeout)
	}
	cfg := TypeConfig{Net: n, Family: f}
	r := &typeRun{cfg: &cfg, deadline: deadline}
	c, err := stunclient.Listen(ctx, n, f, wildcard(f))
	if err != nil {
		sc.Err = err
		return sc
	}
	defer c.Close()
	resp, sent, _, err := paced(ctx, c, send{to: sc.Address, copies: maxCopies, waitEnd: deadline,
		gaps: func(i int) time.Duration { return firstGap << min(i, 5) }})
	bind := result(nat.TestBinding, c.LocalAddr(), sc.Address, 0, resp, sent, err)
	if !bind.Replied {
		sc.Err = bind.Err
		if sc.Err == nil {
			sc.Err = errSilent{err}
		}
		return sc
	}
	sc.Replied, sc.RTT, sc.Mapped, sc.Other = true, bind.RTT, bind.Public(), bind.OtherAddress
	replied(bind.RTT)
	obs := nat.Observations{Tests: []nat.TestResult{bind}}
	if validOther(sc.Address, bind.OtherAddress) {
		// A server check is not in a hurry (the others get a second's grace
		// anyway): a floor on the RTT widens the verify window, so a loaded
		// host does not downgrade a verified server to "advertised".
		r.rtt = max(bind.RTT, serverCheckRTTFloor)
		obs.Tests = append(obs.Tests, r.verify(ctx, sc.Address, bind.OtherAddress))
	}
	sc.RFC5780, _ = nat.RFC5780Support(obs)
	return sc
}

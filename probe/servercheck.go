package probe

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

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
	RFC5780 string
	Err     string
}

// CheckServers probes every server at once, each from its own sockets,
// with the binding and verify tests of `natcheck type`. Once one server has
// answered its binding, the others have ServerGrace to answer theirs; one
// still silent then is given up, so a dead server costs at most that grace,
// never ctx's whole time limit, when a live one answers.
func CheckServers(ctx context.Context, n transport.Net, f stunclient.Family, servers []stunclient.Server) []ServerCheck {
	n, err := stunclient.NetOrReal(n)
	if err != nil {
		out := make([]ServerCheck, len(servers))
		for i, s := range servers {
			out[i] = ServerCheck{Server: s, RFC5780: RFC5780Unknown, Err: err.Error()}
		}
		return out
	}
	out := make([]ServerCheck, len(servers))
	cancels := make([]context.CancelFunc, len(servers))
	replied := make([]atomic.Bool, len(servers))
	firstRTT := make(chan time.Duration, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		var sctx context.Context
		sctx, cancels[i] = context.WithCancel(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = checkServer(sctx, n, f, s, func(rtt time.Duration) {
				replied[i].Store(true)
				firstRTT <- rtt
			})
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	gaveUp := make([]bool, len(servers))
	select {
	case <-all:
	case rtt := <-firstRTT:
		select {
		case <-all:
		case <-time.After(ServerGrace(rtt)):
			for i := range servers {
				if !replied[i].Load() {
					gaveUp[i] = true
					cancels[i]()
				}
			}
			<-all
		}
	}
	for i := range servers {
		cancels[i]()
		if gaveUp[i] && !out[i].Replied {
			out[i].Err = "no answer within the grace period after another server's"
		}
	}
	return out
}

// serverCheckRTTFloor is the least RTT the verify test of a server check
// paces itself by: its window is then at least a quarter second.
const serverCheckRTTFloor = 50 * time.Millisecond

// RFC5780Unknown is a ServerCheck's RFC5780 when the server never answered:
// whether it supports RFC 5780 could not be told.
const RFC5780Unknown = "unknown"

// ServerGrace is how long, after the first server answered, the others may
// take: several round trips, for servers farther away, and at least a
// second, for a lost packet's retransmission.
func ServerGrace(firstRTT time.Duration) time.Duration {
	return max(8*firstRTT, time.Second)
}

// checkServer runs the checks of one server; replied is called once its
// binding answered.
func checkServer(ctx context.Context, n transport.Net, f stunclient.Family, s stunclient.Server, replied func(time.Duration)) ServerCheck {
	sc := ServerCheck{Server: s, RFC5780: RFC5780Unknown}
	addrs, err := s.Resolve(ctx, f)
	if err != nil {
		sc.Err = err.Error()
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
		sc.Err = err.Error()
		return sc
	}
	defer c.Close()
	resp, sent, err := paced(ctx, c, send{to: sc.Address, copies: maxCopies, waitEnd: deadline,
		gaps: func(i int) time.Duration { return firstGap << min(i, 5) }})
	bind := result(nat.TestBinding, c.LocalAddr(), sc.Address, 0, resp, sent, err)
	if !bind.Replied {
		sc.Err = bind.Err
		if sc.Err == "" {
			sc.Err = "no answer"
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
	sc.RFC5780 = nat.Classify(obs).RFC5780
	return sc
}

package probe

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/transport/v3"
)

// ServerCheck is what one server showed of itself: reachability, round
// trip, and whether it supports RFC 5780 behaviour tests.
type ServerCheck struct {
	Server  Server
	Address netip.AddrPort // zero when the name did not resolve
	Replied bool
	RTT     time.Duration
	Mapped  netip.AddrPort
	Other   netip.AddrPort // OTHER-ADDRESS (or RFC 3489 CHANGED-ADDRESS) it advertised
	// RFC5780 is "verified" (a CHANGE-REQUEST reply really came from
	// OTHER-ADDRESS), "advertised" (a valid OTHER-ADDRESS, unproven from
	// here), "invalid" (OTHER-ADDRESS without a second IP and port, or a
	// changed reply from the wrong place) or "absent".
	RFC5780 string
	Err     string
}

// CheckServers probes every server at once, each from its own sockets,
// with the binding and verify tests of `natcheck type`.
func CheckServers(ctx context.Context, n transport.Net, f Family, servers []Server) []ServerCheck {
	n, err := netOrReal(n)
	if err != nil {
		out := make([]ServerCheck, len(servers))
		for i, s := range servers {
			out[i] = ServerCheck{Server: s, RFC5780: "absent", Err: err.Error()}
		}
		return out
	}
	out := make([]ServerCheck, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = checkServer(ctx, n, f, s)
		}()
	}
	wg.Wait()
	return out
}

func checkServer(ctx context.Context, n transport.Net, f Family, s Server) ServerCheck {
	sc := ServerCheck{Server: s, RFC5780: "absent"}
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
	c, err := Listen(ctx, n, f, wildcard(f))
	if err != nil {
		sc.Err = err.Error()
		return sc
	}
	defer c.Close()
	resp, sent, err := paced(ctx, c, send{to: sc.Address, copies: maxCopies, waitEnd: deadline,
		gaps: func(i int) time.Duration { return firstGap << min(i, 5) }})
	bind := result(TestBinding, c.LocalAddr(), sc.Address, 0, resp, sent, err)
	if !bind.Replied {
		sc.Err = bind.Err
		if sc.Err == "" {
			sc.Err = "no answer"
		}
		return sc
	}
	sc.Replied, sc.RTT, sc.Mapped, sc.Other = true, bind.RTT, bind.Public(), bind.OtherAddress
	obs := Observations{Tests: []TestResult{bind}}
	if validOther(sc.Address, bind.OtherAddress) {
		r.rtt = max(bind.RTT, time.Millisecond)
		obs.Tests = append(obs.Tests, r.verify(ctx, sc.Address, bind.OtherAddress))
	}
	sc.RFC5780 = Classify(obs).RFC5780
	return sc
}

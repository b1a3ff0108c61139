package probe

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// tcpRound asks every server for a binding over TCP (RFC 8489 6.2.2), to
// tell "UDP blocked" (TCP answers) from "offline" (nothing answers).
func (r *typeRun) tcpRound(ctx context.Context) []nat.TestResult {
	servers := r.resolvedServers() // names still resolving are not asked over TCP
	out := make([]nat.TestResult, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.tcpBinding(ctx, s)
		}()
	}
	wg.Wait()
	return out
}

func (r *typeRun) tcpBinding(ctx context.Context, to netip.AddrPort) nat.TestResult {
	t := nat.TestResult{Name: nat.TestTCP, To: to, Attempts: 1}
	network := "tcp4"
	if r.cfg.Family == stunclient.IPv6 {
		network = "tcp6"
	}
	start := time.Now()
	// Cancel (rather than a context, which transport.Dialer lacks) lets
	// Ctrl-C end a dial to a black-holed server at once.
	nd := &net.Dialer{Deadline: r.deadline, Cancel: ctx.Done()} //nolint:staticcheck
	if r.cfg.Bind.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: r.cfg.Bind.Addr().AsSlice()}
	}
	d := r.cfg.Net.CreateDialer(nd)

	c, err := d.Dial(network, to.String())
	if err != nil {
		t.Err = err
		return t
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetDeadline(r.deadline)
	t.Local = stunclient.AddrPortOf(c.LocalAddr())
	r.opened("tcp", t.Local)
	resp, err := stunclient.StreamBinding(c, to)
	if err != nil {
		t.Err = err
		return t
	}
	// From before the dial: this RTT includes the TCP handshake.
	t.Replied, t.From, t.RTT = true, to, time.Since(start)
	t.XORMapped, t.Mapped, t.ErrorCode = resp.XORMapped, resp.Mapped, resp.ErrorCode
	return t
}

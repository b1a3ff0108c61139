package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
)

// errNoOwnMapping is the hairpin test's error when the first socket's
// binding got no usable answer.
var errNoOwnMapping = errors.New("the socket's own mapping could not be learnt")

// hairpin tests whether the NAT loops a datagram sent to a public mapping
// back inside. Socket A learns its own mapping from the primary server;
// socket B then sends Binding requests to that mapping, and hairpinning is
// counted only if A really receives one. Plain sockets are used because A
// must see a request, not a reply. Only this host's own mapping is
// targeted, with a handful of datagrams.
func (r *typeRun) hairpin(ctx context.Context, prim netip.AddrPort) nat.TestResult {
	t := nat.TestResult{Name: nat.TestHairpin}
	network := "udp4"
	if r.cfg.Family == stunclient.IPv6 {
		network = "udp6"
	}
	a, err := r.cfg.Net.ListenPacket(network, r.cfg.laddr(0))
	if err != nil {
		t.Err = err
		return t
	}
	defer a.Close()
	r.opened("hairpin", stunclient.AddrPortOf(a.LocalAddr()))
	b, err := r.cfg.Net.ListenPacket(network, r.cfg.laddr(0))
	if err != nil {
		t.Err = err
		return t
	}
	defer b.Close()
	r.opened("hairpin", stunclient.AddrPortOf(b.LocalAddr()))
	// Cancelling moves the read deadlines into the past; the reads below
	// set theirs with readUntil, which never moves one back out of it.
	stop := context.AfterFunc(ctx, func() {
		a.SetReadDeadline(time.Unix(1, 0))
		b.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	t.Local = stunclient.AddrPortOf(a.LocalAddr())

	mapped, ok := r.rawBinding(ctx, a, prim)
	if !ok {
		t.Err = errNoOwnMapping
		if err := ctx.Err(); err != nil {
			t.Err = err
		}
		return t
	}
	t.To = mapped
	req, err := stunclient.BuildRequest(0)
	if err != nil {
		t.Err = err
		return t
	}
	// The hairpinned path never leaves the NAT, so its round trip is a
	// LAN's: copies go minGap apart and the wait is the floor, not WAN RTTs.
	end := time.Now().Add((silenceCopies-1)*minGap + silenceFloor)
	if end.After(r.deadline) {
		end = r.deadline
	}
	// The sender stops when the read below is over, and is waited for: b
	// is closed (deferred above) only once nothing writes to it any more.
	quit, sent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		dst := net.UDPAddrFromAddrPort(mapped)
		pace := time.NewTimer(minGap)
		defer pace.Stop()
		for i := 0; i < silenceCopies && time.Now().Before(end); i++ {
			b.WriteTo(req.Raw, dst)
			pace.Reset(minGap)
			select {
			case <-pace.C:
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	from, ok := readTx(ctx, a, req.TransactionID, end)
	close(quit)
	<-sent
	t.Attempts = silenceCopies
	if ok {
		t.Replied, t.From = true, from
	}
	return t
}

// rawBinding sends paced Binding requests from a plain socket and returns
// the XOR-MAPPED-ADDRESS of the first reply from the server.
func (r *typeRun) rawBinding(ctx context.Context, pc net.PacketConn, to netip.AddrPort) (netip.AddrPort, bool) {
	req, err := stunclient.BuildRequest(0)
	if err != nil {
		return netip.AddrPort{}, false
	}
	end := r.windowEnd()
	for i := 0; i < silenceCopies && time.Now().Before(end) && ctx.Err() == nil; i++ {
		if _, err := pc.WriteTo(req.Raw, net.UDPAddrFromAddrPort(to)); err != nil {
			return netip.AddrPort{}, false
		}
		wait := time.Now().Add(r.gap())
		if i == silenceCopies-1 {
			wait = end
		}
		if m, ok := readReply(ctx, pc, req.TransactionID, to, wait); ok {
			// XOR-MAPPED-ADDRESS, else RFC 3489's MAPPED-ADDRESS.
			mapped := stunclient.ParseResponse(m, to).PublicAddr()
			return mapped, mapped.IsValid()
		}
	}
	return netip.AddrPort{}, false
}

// readReply reads until the deadline for a message with this transaction
// ID from the expected source; anything else is ignored.
func readReply(ctx context.Context, pc net.PacketConn, id [stun.TransactionIDSize]byte, from netip.AddrPort, until time.Time) (*stun.Message, bool) {
	buf := make([]byte, 1500)
	if !readUntil(ctx, pc, until) {
		return nil, false
	}
	for {
		n, src, err := pc.ReadFrom(buf)
		if err != nil {
			return nil, false
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() == nil && m.TransactionID == id && stunclient.AddrPortOf(src) == nat.Unmap(from) {
			return m, true
		}
	}
}

// readTx reads until the deadline for a message with this transaction ID
// from anywhere, and says where it came from.
func readTx(ctx context.Context, pc net.PacketConn, id [stun.TransactionIDSize]byte, until time.Time) (netip.AddrPort, bool) {
	buf := make([]byte, 1500)
	if !readUntil(ctx, pc, until) {
		return netip.AddrPort{}, false
	}
	for {
		n, src, err := pc.ReadFrom(buf)
		if err != nil {
			return netip.AddrPort{}, false
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() == nil && m.TransactionID == id {
			return stunclient.AddrPortOf(src), true
		}
	}
}

// readUntil sets pc's read deadline to until and reports whether ctx still
// allows reading. ctx is checked after the deadline is set: if the cancel
// hook ran before, ctx.Err() says so; if it runs after, it moves the
// deadline into the past itself. Either way a cancelled read ends at once
// instead of waiting until the new deadline.
func readUntil(ctx context.Context, pc net.PacketConn, until time.Time) bool {
	pc.SetReadDeadline(until)
	return ctx.Err() == nil
}

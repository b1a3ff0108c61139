package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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

	mapped, err := r.confirmedMapping(ctx, a, prim)
	if err != nil {
		t.Err = err
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

// errUnconfirmed is the hairpin test's error when the socket's mapping
// was named by one answer only, or by two that disagree: natcheck never
// sends to an address a single unconfirmed answer named, so a lying
// server cannot aim its datagrams at a third party.
type errUnconfirmed struct{ a, b netip.AddrPort }

func (e errUnconfirmed) Error() string {
	if e.b.IsValid() {
		return fmt.Sprintf("the server named two different public addresses for one socket (%s, %s)", e.a, e.b)
	}
	return fmt.Sprintf("public address %s was named by one answer only, not confirmed", e.a)
}

// confirmedMapping asks the server for the socket's mapping in two
// transactions at once (paced copies of both) and returns it only when
// both answers name the same valid address of the right family: a target
// for the hairpin datagrams confirmed twice by one server.
func (r *typeRun) confirmedMapping(ctx context.Context, pc net.PacketConn, to netip.AddrPort) (netip.AddrPort, error) {
	var reqs [2]*stun.Message
	for i := range reqs {
		m, err := stunclient.BuildRequest(0)
		if err != nil {
			return netip.AddrPort{}, err
		}
		reqs[i] = m
	}
	var got [2]netip.AddrPort
	end := r.windowEnd()
	for i := 0; i < silenceCopies && time.Now().Before(end) && ctx.Err() == nil; i++ {
		for k, req := range reqs {
			if got[k].IsValid() {
				continue
			}
			if _, err := pc.WriteTo(req.Raw, net.UDPAddrFromAddrPort(to)); err != nil {
				return netip.AddrPort{}, err
			}
		}
		wait := time.Now().Add(r.gap())
		if i == silenceCopies-1 {
			wait = end
		}
		for !got[0].IsValid() || !got[1].IsValid() {
			m, ok := readReply(ctx, pc, [][stun.TransactionIDSize]byte{reqs[0].TransactionID, reqs[1].TransactionID}, to, wait)
			if !ok {
				break
			}
			k := 0
			if m.TransactionID == reqs[1].TransactionID {
				k = 1
			}
			// XOR-MAPPED-ADDRESS, else RFC 3489's MAPPED-ADDRESS; an
			// impossible address counts as an answer that names nothing.
			mapped := stunclient.ParseResponse(m, to).PublicAddr()
			if !nat.Plausible(mapped, to) {
				return netip.AddrPort{}, fmt.Errorf("the server named an impossible public address %s", addrText(mapped))
			}
			if got[k].IsValid() && got[k] != mapped { // two answers to copies of one request
				return netip.AddrPort{}, errUnconfirmed{got[k], mapped}
			}
			got[k] = mapped
		}
		if got[0].IsValid() && got[1].IsValid() {
			break
		}
	}
	switch {
	case got[0].IsValid() && got[1].IsValid() && got[0] == got[1]:
		return got[0], nil
	case got[0].IsValid() && got[1].IsValid():
		return netip.AddrPort{}, errUnconfirmed{got[0], got[1]}
	case got[0].IsValid():
		return netip.AddrPort{}, errUnconfirmed{a: got[0]}
	case got[1].IsValid():
		return netip.AddrPort{}, errUnconfirmed{a: got[1]}
	}
	return netip.AddrPort{}, errNoOwnMapping
}

func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return "(none)"
	}
	return a.String()
}

// readReply reads until the deadline for a message with one of these
// transaction IDs from the expected source; anything else is ignored.
func readReply(ctx context.Context, pc net.PacketConn, ids [][stun.TransactionIDSize]byte, from netip.AddrPort, until time.Time) (*stun.Message, bool) {
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
		if m.Decode() == nil && slices.Contains(ids, m.TransactionID) && stunclient.AddrPortOf(src) == nat.Unmap(from) {
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

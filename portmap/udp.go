package portmap

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Well-known ports on the gateway.
const (
	natpmpPort = 5351 // NAT-PMP and PCP share it (RFC 6887 section 19)
	ssdpPort   = 1900
)

// dialGateway opens a UDP socket connected to the gateway's port. Being
// connected, it only ever receives datagrams from exactly that address
// (RFC 6886 and 6887 require checking the source), and an ICMP port
// unreachable surfaces as ECONNREFUSED: the fast "not supported".
func dialGateway(gw Gateway, port uint16) (*net.UDPConn, error) {
	var laddr *net.UDPAddr
	if gw.Local.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw.Local, 0))
	}
	return net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw.Addr, port)))
}

// exchange sends reqs (one datagram each) on conn and returns the first
// datagram that match accepts, with the time since the first transmission.
// It retransmits after firstRTO, doubling each time, until ctx ends; then
// the error is an errNoAnswer (errors.Is ErrNoAnswer) if ctx's deadline
// passed, ctx's error otherwise.
func exchange(ctx context.Context, conn *net.UDPConn, reqs [][]byte, match func([]byte) bool) ([]byte, time.Duration, error) {
	// Wake a blocked read at once when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	buf := make([]byte, 2048)
	rto := firstRTO
	for tries := 1; ; tries++ {
		for _, req := range reqs {
			if _, err := conn.Write(req); err != nil {
				return nil, 0, sendError(err)
			}
		}
		next := time.Now().Add(rto)
		rto *= 2
		if dl, ok := ctx.Deadline(); ok && dl.Before(next) {
			next = dl
		}
		_ = conn.SetReadDeadline(next)
		if ctx.Err() != nil { // cancelled before the deadline was set
			return nil, time.Since(start), ctxError(ctx, start, tries)
		}
		for {
			n, err := conn.Read(buf)
			if err == nil {
				if match(buf[:n]) {
					return append([]byte(nil), buf[:n]...), time.Since(start), nil
				}
				continue // not ours: keep waiting for this transmission
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil, time.Since(start), ErrRefused
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, 0, err
			}
			// ctx's timer may fire a moment after its deadline: trust the
			// clock too, or we would spin retransmitting until it does.
			if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
				return nil, time.Since(start), ctxError(ctx, start, tries)
			}
			break // retransmit
		}
	}
}

// transact runs one request/response transaction with the NAT-PMP or PCP
// server on conn (both on port 5351): it sends req with exchange's
// retransmission schedule until a datagram parses (parse) and answers req
// (ours), or until one is the other protocol's answer (errNATPMPAnswer,
// errPCPAnswer: the server does not speak ours), which ends it with that
// error. Datagrams that do not parse or are not ours are ignored.
func transact[R any](ctx context.Context, conn *net.UDPConn, req []byte, parse func([]byte) (R, error), ours func(R) bool) (R, time.Duration, error) {
	var resp R
	var perr error
	_, rtt, err := exchange(ctx, conn, [][]byte{req}, func(b []byte) bool {
		r, err := parse(b)
		switch {
		case errors.Is(err, errNATPMPAnswer), errors.Is(err, errPCPAnswer):
			perr = err
			return true
		case err == nil && ours(r):
			resp = r
			return true
		}
		return false
	})
	if err != nil {
		return resp, rtt, err
	}
	return resp, rtt, perr
}

func sendError(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ErrRefused
	}
	return err
}

func ctxError(ctx context.Context, start time.Time, tries int) error {
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The wait is the one ctx allowed (its deadline), not the moment
		// its timer woke us a little later.
		wait := time.Since(start)
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, dl.Sub(start))
		}
		return errNoAnswer{wait: wait, tries: tries}
	}
	return ctx.Err()
}

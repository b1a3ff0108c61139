package stunclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
)

// TCPBindingResult is one STUN Binding over TCP (RFC 8489 section 6.2.2).
type TCPBindingResult struct {
	Name   nat.TestName   // the test it belongs to: nat.TCPPrimary, nat.TCPProbe, ...
	Local  netip.AddrPort // the connection's local endpoint
	To     netip.AddrPort
	Mapped netip.AddrPort // XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS
	Other  netip.AddrPort // OTHER-ADDRESS, zero if absent
	RTT    time.Duration  // from the request to the response (the connection is up by then)
	// ErrorCode is a STUN error response's code; Err says why there is no
	// usable answer (connection refused, timeout, malformed reply, ...).
	ErrorCode int
	Err       error
}

// OK reports whether the binding gave a mapped address.
func (r TCPBindingResult) OK() bool { return r.Err == nil && r.Mapped.IsValid() }

// TCPBinding connects to to over TCP and runs one Binding transaction. A
// valid laddr binds the connection to that local endpoint (shared with other
// sockets through SO_REUSEADDR); a zero laddr lets the system choose. The
// connection is returned open, so that its mapping lives while other tests
// run; the caller closes it (nil when the connection failed).
func TCPBinding(ctx context.Context, f Family, laddr, to netip.AddrPort) (TCPBindingResult, net.Conn) {
	r := TCPBindingResult{To: to}
	d := net.Dialer{Control: ReuseControl}
	if laddr.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
	}
	c, err := d.DialContext(ctx, f.Network("tcp"), to.String())
	if err != nil {
		r.Err = err
		return r, nil
	}
	r.Local = AddrPortOf(c.LocalAddr())
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	resp, err := StreamBinding(c, to)
	r.RTT = resp.RTT
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		r.Err = err
		return r, c
	}
	c.SetDeadline(time.Time{})
	r.Mapped, r.Other, r.ErrorCode = resp.PublicAddr(), resp.OtherAddress, resp.ErrorCode
	switch {
	case r.ErrorCode != 0:
		r.Err = fmt.Errorf("STUN error %d %s", resp.ErrorCode, resp.ErrorReason)
	case !r.Mapped.IsValid():
		r.Err = errors.New("reply carried no mapped address")
	}
	return r, c
}

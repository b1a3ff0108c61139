package probe

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4"
)

// IPv6Status is how STUN over IPv6 went, as CheckIPv6 found it.
type IPv6Status string

// The outcomes of STUN over IPv6.
const (
	IPv6Works    IPv6Status = "works"     // a server answered over IPv6
	IPv6NoAnswer IPv6Status = "no-answer" // servers were asked, none answered
	IPv6NoRoute  IPv6Status = "no-route"  // the host could not send IPv6 (no address or route)
	IPv6NoServer IPv6Status = "no-server" // no server has an IPv6 address
)

// IPv6Path is how the IPv6 path treats the host's address.
type IPv6Path string

// The IPv6 paths.
const (
	PathRouted     IPv6Path = "routed"     // servers see one of the host's own addresses
	PathTranslated IPv6Path = "translated" // servers see another address: NAT66 or NPTv6
	PathUnknown    IPv6Path = "unknown"    // STUN over IPv6 did not work
)

// IPv6Check is the host's IPv6 picture.
type IPv6Check struct {
	Global []netip.Addr // the host's global unicast addresses
	ULA    []netip.Addr // the host's unique local addresses (fc00::/7)
	STUN   IPv6Status
	Path   IPv6Path
	Public netip.AddrPort
	Local  netip.AddrPort // the route's source address and the socket's port
	// PortPreserved is decided when translated: whether the mapped port
	// is the socket's (stateless NPTv6 always keeps it; NAT66 may not).
	// It is tri.Unknown otherwise.
	PortPreserved tri.Bool
	WhoAmI        *WhoAmI // the STUN exchange behind the answer
	Err           error   // why STUN did not work
	Elapsed       time.Duration
}

// IPv6Options configure CheckIPv6.
type IPv6Options struct {
	Servers []stunclient.Server
	Net     transport.Net // nil: the host's network
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
}

// CheckIPv6 lists the host's IPv6 addresses and asks the servers, over
// IPv6, which address they see. A mapped address that is one of the host's
// own means the path is routed; any other means it is translated. A failed
// STUN exchange is part of the answer (STUN and Path say so), not an error;
// the error is only for a host whose interfaces cannot be listed.
func CheckIPv6(ctx context.Context, o IPv6Options) (*IPv6Check, error) {
	start := time.Now()
	n, err := stunclient.NetOrReal(o.Net)
	if err != nil {
		return nil, err
	}
	own, err := Interfaces(n)
	if err != nil {
		return nil, err
	}
	c := &IPv6Check{Path: PathUnknown}
	c.Global, c.ULA = splitIPv6(own)
	w, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: o.Servers, Family: stunclient.IPv6, Net: n, Resolver: o.Resolver})
	c.WhoAmI, c.Elapsed = w, time.Since(start)
	if err != nil {
		c.STUN, c.Err = ipv6Failure(w), err
		if errors.Is(err, context.Canceled) {
			return c, err
		}
		return c, nil
	}
	c.STUN, c.Public, c.Local = IPv6Works, w.Public, w.Local
	c.Path = PathRouted
	if w.NAT {
		c.Path = PathTranslated
		c.PortPreserved = tri.Of(w.Public.Port() == w.Local.Port())
	}
	return c, nil
}

// splitIPv6 picks the global and unique local IPv6 addresses.
func splitIPv6(addrs []nat.HostAddr) (global, ula []netip.Addr) {
	for _, h := range addrs {
		a := h.Addr
		if !a.Is6() || a.Is4In6() {
			continue
		}
		switch {
		case a.IsPrivate():
			ula = append(ula, a)
		case a.IsGlobalUnicast():
			global = append(global, a)
		}
	}
	return global, ula
}

// ipv6Failure tells why no server answered over IPv6: none had an IPv6
// address, the host could not send (network unreachable), or silence. A
// name whose lookup timed out or failed proves nothing about IPv6: it
// counts as silence (Err then tells the DNS cause).
func ipv6Failure(w *WhoAmI) IPv6Status {
	if w == nil || len(w.Servers) == 0 {
		return IPv6NoAnswer
	}
	count := map[Status]int{}
	for _, s := range w.Servers {
		st := s.Status
		if st == StatusUnresolved && !errors.Is(s.Err, stunclient.ErrNoAddress) && !errors.Is(s.Err, stunclient.ErrNoSuchHost) {
			st = StatusNoAnswer
		}
		count[st]++
	}
	switch {
	case count[StatusUnresolved] == len(w.Servers):
		return IPv6NoServer
	case count[StatusNoAnswer] == 0 && count[StatusFailed] > 0:
		return IPv6NoRoute
	default:
		return IPv6NoAnswer
	}
}

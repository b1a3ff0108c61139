//go:build !linux

package probe

import (
	"context"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
)

// ttlProbe needs IP_RECVERR, which only Linux offers to unprivileged
// sockets: elsewhere the carrier-NAT probe is not tested.
func ttlProbe(context.Context, netip.Addr, netip.AddrPort, time.Duration, time.Duration, func(netip.AddrPort)) ([]nat.Hop, int, bool) {
	return nil, 0, false
}

//go:build !linux

package stunclient

import (
	"net"
	"net/netip"
)

// icmpErrors is Linux-only: elsewhere an unconnected UDP socket does not
// say which destination an ICMP error came from, so a closed port reads as
// silence, answered by the timeout.
func icmpErrors(net.PacketConn) func(refused func(netip.AddrPort)) { return nil }

package probe

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4"
)

// Interfaces returns every address on the host's interfaces, loopback
// included, so that a mapped address can be recognised as the host's own.
// Tunnel interfaces are marked because their addresses (tailscale's
// 100.64.0.0/10) say nothing about NAT.
func Interfaces(n transport.Net) ([]nat.HostAddr, error) {
	ifs, err := n.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []nat.HostAddr
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		tunnel := ifc.Flags&net.FlagPointToPoint != 0 || isTunnelName(ifc.Name)
		for _, a := range addrs {
			if p, ok := prefixOf(a); ok {
				out = append(out, nat.HostAddr{Addr: p.Addr().Unmap(), Iface: ifc.Name, Tunnel: tunnel})
			}
		}
	}
	return out, nil
}

func isTunnelName(name string) bool {
	for _, p := range []string{"tailscale", "wg", "tun", "utun", "zt", "ts"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func prefixOf(a net.Addr) (netip.Prefix, bool) {
	switch v := a.(type) {
	case *net.IPNet:
		ip, ok := netip.AddrFromSlice(v.IP)
		if !ok {
			return netip.Prefix{}, false
		}
		ones, _ := v.Mask.Size()
		return netip.PrefixFrom(ip.Unmap(), ones), true
	case *net.IPAddr:
		ip, ok := netip.AddrFromSlice(v.IP)
		if !ok {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(ip.Unmap(), ip.BitLen()), true
	}
	p, err := netip.ParsePrefix(a.String())
	return p, err == nil
}

// RouteSource returns the source address the host's routing table picks to
// reach to. Connecting a UDP socket sends nothing; it only chooses the route.
// This, not the wildcard a socket is bound to, is the address to compare
// with the mapped one (a wildcard never equals a public address).
func RouteSource(n transport.Net, f stunclient.Family, to netip.AddrPort) (netip.Addr, error) {
	c, err := n.Dial(f.Network("udp"), to.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find route to %s: %w", to.Addr(), err)
	}
	defer c.Close()
	ap := stunclient.AddrPortOf(c.LocalAddr())
	if !ap.IsValid() {
		return netip.Addr{}, fmt.Errorf("find route to %s: no local address", to.Addr())
	}
	return ap.Addr(), nil
}

// isOwnAddr reports whether a is one of the host's addresses.
func isOwnAddr(a netip.Addr, own []nat.HostAddr) bool {
	a = a.Unmap()
	for _, o := range own {
		if o.Addr == a {
			return true
		}
	}
	return false
}

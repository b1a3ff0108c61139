package probe

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/transport/v3"
)

// HostAddrs returns every address on the host's interfaces, loopback
// included, so that a mapped address can be recognised as the host's own.
func HostAddrs(n transport.Net) ([]netip.Addr, error) {
	ifaces, err := n.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a); ok {
				out = append(out, p.Addr().Unmap())
			}
		}
	}
	return out, nil
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
func RouteSource(n transport.Net, f Family, to netip.AddrPort) (netip.Addr, error) {
	c, err := n.Dial(f.network("udp"), to.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find route to %s: %w", to.Addr(), err)
	}
	defer c.Close()
	ap := addrPortOf(c.LocalAddr())
	if !ap.IsValid() {
		return netip.Addr{}, fmt.Errorf("find route to %s: no local address", to.Addr())
	}
	return ap.Addr(), nil
}

// isOwnAddr reports whether a is one of the host's addresses.
func isOwnAddr(a netip.Addr, own []netip.Addr) bool {
	a = a.Unmap()
	for _, o := range own {
		if o == a {
			return true
		}
	}
	return false
}

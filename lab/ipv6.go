package lab

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// IPv6Mode says how the router carries the client's IPv6 traffic.
type IPv6Mode string

// IPv6 modes of the lab.
const (
	// IPv6Routed gives the client a global address from a /64 that the
	// internet routes to the router: no translation, as most ISPs do.
	IPv6Routed IPv6Mode = "routed"
	// IPv6NAT66 gives the client a unique local address (fd00:1::/64) that
	// the router masquerades to its WAN address, as NAT66 routers do.
	IPv6NAT66 IPv6Mode = "nat66"
	// IPv6NPT gives the client a unique local address that the router
	// maps, prefix for prefix, to 2001:db8:2::/64 (NPTv6-like: the
	// interface identifier and the port are kept, inbound is mapped back).
	IPv6NPT IPv6Mode = "nptv6"
)

// IPv6 is the IPv6 side of a lab, added by AddIPv6.
type IPv6 struct {
	Mode      IPv6Mode
	ClientIP  netip.Addr    // the client's own address
	PublicIP  netip.Addr    // the address servers see the client as
	Gateway   netip.Addr    // the router's LAN address
	RouterWAN netip.Addr    // the router's WAN address
	ServerIPs [2]netip.Addr // 2001:db8:ff::10 and ::11, in Internet
}

// Fixed IPv6 addresses: documentation (2001:db8::/32) and unique local
// ranges, only ever inside lab namespaces.
var (
	v6Routed    = netip.MustParsePrefix("2001:db8:1::/64")
	v6ULA       = netip.MustParsePrefix("fd00:1::/64")
	v6NPTOut    = netip.MustParsePrefix("2001:db8:2::/64")
	v6RouterWAN = netip.MustParseAddr("2001:db8:ff::2")
	v6Servers   = [2]netip.Addr{netip.MustParseAddr("2001:db8:ff::10"), netip.MustParseAddr("2001:db8:ff::11")}
)

// AddIPv6 adds IPv6 to a built lab, beside its IPv4 topology: the client
// and the router's LAN share a /64, the router's WAN and both server
// addresses share 2001:db8:ff::/64. The IPv4 rules of the Kind do not apply
// to IPv6 (a udp-blocked lab still passes IPv6 UDP); only mode decides how
// IPv6 is forwarded. DoubleNAT labs are not supported. It fails the test on
// error.
func (l *Lab) AddIPv6(mode IPv6Mode) IPv6 {
	l.t.Helper()
	v, err := l.addIPv6(mode)
	if err != nil {
		l.t.Fatalf("lab: add IPv6 (%s): %v", mode, err)
	}
	return v
}

func (l *Lab) addIPv6(mode IPv6Mode) (IPv6, error) {
	if l.Carrier != "" {
		return IPv6{}, fmt.Errorf("not supported in a %s lab", l.Options.Kind)
	}
	lan := v6Routed
	switch mode {
	case IPv6Routed:
	case IPv6NAT66, IPv6NPT:
		lan = v6ULA
	default:
		return IPv6{}, fmt.Errorf("unknown mode %q", mode)
	}
	v := IPv6{
		Mode:      mode,
		ClientIP:  lan.Addr().Next().Next(), // ::2
		Gateway:   lan.Addr().Next(),        // ::1
		RouterWAN: v6RouterWAN,
		ServerIPs: v6Servers,
	}
	v.PublicIP = v.ClientIP
	switch mode {
	case IPv6NAT66:
		v.PublicIP = v.RouterWAN
	case IPv6NPT:
		v.PublicIP = netip.AddrFrom16(mergePrefix(v6NPTOut, v.ClientIP))
	}
	if err := l.Do(l.Router, func() error {
		for _, k := range []string{"net/ipv6/conf/all/forwarding", "net/ipv6/conf/default/forwarding"} {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte("1"), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", k, err)
			}
		}
		return nil
	}); err != nil {
		return v, err
	}
	// nodad: duplicate address detection would leave each address
	// "tentative" (unusable) for a second or more.
	steps := []struct{ ns, batch string }{
		{l.Client, fmt.Sprintf("addr add %s/64 dev eth0 nodad\nroute add ::/0 via %s dev eth0", v.ClientIP, v.Gateway)},
		{l.Router, fmt.Sprintf("addr add %s/64 dev lan0 nodad\naddr add %s/64 dev wan0 nodad", v.Gateway, v.RouterWAN)},
		{l.Internet, fmt.Sprintf("addr add %s/64 dev eth0 nodad\naddr add %s/64 dev eth0 nodad", v.ServerIPs[0], v.ServerIPs[1])},
	}
	switch mode {
	case IPv6Routed:
		steps = append(steps, struct{ ns, batch string }{l.Internet, fmt.Sprintf("route add %s via %s dev eth0", lan, v.RouterWAN)})
	case IPv6NPT:
		steps = append(steps, struct{ ns, batch string }{l.Internet, fmt.Sprintf("route add %s via %s dev eth0", v6NPTOut, v.RouterWAN)})
	}
	for _, s := range steps {
		if err := l.ip(s.ns, s.batch); err != nil {
			return v, err
		}
	}
	if err := l.waitIPv6Ready(); err != nil {
		return v, err
	}
	switch mode {
	case IPv6NAT66:
		return v, l.nft(l.Router, `table ip6 nclab6 {
	chain natpost {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
	}
}
`)
	case IPv6NPT:
		return v, l.nft(l.Router, fmt.Sprintf(`table ip6 nclab6 {
	chain natpost {
		type nat hook postrouting priority srcnat;
		oifname "wan0" ip6 saddr %[1]s snat ip6 prefix to %[2]s
	}
	chain natpre {
		type nat hook prerouting priority dstnat;
		iifname "wan0" ip6 daddr %[2]s dnat ip6 prefix to %[1]s
	}
}
`, lan, v6NPTOut))
	}
	return v, nil
}

// waitIPv6Ready waits until no address in the lab is tentative. Our own
// addresses skip duplicate address detection, but the link-local addresses
// the kernel gave each veth when it came up do not, and neighbour discovery
// stalls for a second or two until they are usable.
func (l *Lab) waitIPv6Ready() error {
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range []string{l.Client, l.Router, l.Internet} {
		for {
			out, err := exec.Command("ip", "-n", ns, "-6", "addr", "show", "tentative").Output()
			if err != nil {
				return fmt.Errorf("ip -n %s -6 addr: %w", ns, err)
			}
			if len(bytes.TrimSpace(out)) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("IPv6 addresses in %s still tentative: %s", ns, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// mergePrefix puts a's interface identifier (low 64 bits) behind the /64 p.
func mergePrefix(p netip.Prefix, a netip.Addr) [16]byte {
	out := p.Addr().As16()
	low := a.As16()
	copy(out[8:], low[8:])
	return out
}

// ListenUDP6 opens an IPv6 UDP socket inside namespace ns, bound to addr
// ("[2001:db8:ff::10]:3478"). It is closed at test cleanup.
func (l *Lab) ListenUDP6(ns, addr string) (*net.UDPConn, error) {
	return l.listenUDP(ns, "udp6", addr)
}

package lab

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// A server site in a cloud: a VM whose interface carries private
// addresses, behind the provider's edge router, which maps two public
// addresses 1:1 onto them (DNAT inbound, SNAT outbound, ports kept) and
// filters inbound traffic as a stateful security group that opens UDP and
// TCP 3478-3479 only. See docs/lab.md ("A server behind a cloud's 1:1 NAT").
//
//	client ── router ── (eth0) internet (cloud0) ── (wan0) cloud (lan0) ── (eth0) vm
//
// The internet answers ARP for the public addresses 203.0.113.20 and .21
// and routes them over 198.18.0.0/30 to the cloud router, which maps them
// to the VM's 172.31.0.10 and .11 (its LAN is 172.31.0.0/24).

// CloudServer is the server site AddCloudServer built.
type CloudServer struct {
	// Host is the VM's namespace: run the server there, bound to PrivateIPs.
	Host string
	// Router is the provider's edge: the 1:1 NAT and the security group.
	Router string
	// PrivateIPs are the VM's own addresses (172.31.0.10 and .11);
	// PublicIPs the ones the internet reaches them at (203.0.113.20 and
	// .21), in the same order.
	PrivateIPs, PublicIPs [2]netip.Addr
}

// Addresses of the cloud site. The VM's are in AWS's default VPC range;
// the public ones sit on the lab's WAN segment, so every client router
// (which has no default route in a single-site lab) reaches them on-link,
// through the internet namespace's proxy ARP.
var (
	cloudPrivate = [2]netip.Addr{netip.MustParseAddr("172.31.0.10"), netip.MustParseAddr("172.31.0.11")}
	cloudPublic  = [2]netip.Addr{netip.MustParseAddr("203.0.113.20"), netip.MustParseAddr("203.0.113.21")}
	cloudLANGW   = netip.MustParseAddr("172.31.0.1")
	transitInet  = netip.MustParseAddr("198.18.0.1") // the internet's end of the link to the cloud
	transitCloud = netip.MustParseAddr("198.18.0.2") // the cloud router's WAN
)

// CloudPorts are what the cloud site's security group lets in (UDP and
// TCP, new flows; answers to the VM's own flows always pass): an RFC 5780
// server's primary and alternate ports.
const CloudPorts = "3478-3479"

// AddCloudServer adds a server site behind a cloud's 1:1 NAT to l (a Lab
// or a Pair's), removed with it. The internet does not route the private
// addresses: a client that sends to them gets nowhere, as on the real
// internet.
func (l *Lab) AddCloudServer(t testing.TB) *CloudServer {
	t.Helper()
	id := strings.TrimSuffix(l.Internet, "-inet")
	c := &CloudServer{Host: id + "-vm", Router: id + "-cloud", PrivateIPs: cloudPrivate, PublicIPs: cloudPublic}
	if err := l.buildCloud(c); err != nil {
		t.Fatalf("lab: cloud server site: %v", err)
	}
	return c
}

func (l *Lab) buildCloud(c *CloudServer) error {
	for _, ns := range []struct {
		name   string
		router bool
	}{{c.Router, true}, {c.Host, false}} {
		if err := l.addNS(ns.name); err != nil {
			return err
		}
		if err := l.setSysctls(ns.name, ns.router, false); err != nil {
			return err
		}
	}
	// The internet now forwards (to the cloud), as it already does in a Pair.
	if err := l.setSysctls(l.Internet, true, false); err != nil {
		return err
	}
	if err := l.ip(l.Internet, "link add cloud0 type veth peer name wan0 netns "+c.Router); err != nil {
		return err
	}
	if err := l.ip(c.Router, "link add lan0 type veth peer name eth0 netns "+c.Host); err != nil {
		return err
	}
	// The internet routes the public /32s to the cloud and answers ARP
	// for them on its WAN segment, at once (proxy_delay 0: by default a
	// proxied answer to a broadcast request waits up to 0.8 s).
	inet := fmt.Sprintf("addr add %s/30 dev cloud0\nlink set cloud0 up\nntable change name arp_cache dev eth0 proxy_delay 0", transitInet)
	for _, pub := range c.PublicIPs {
		inet += fmt.Sprintf("\nroute add %s/32 via %s\nneigh add proxy %s dev eth0", pub, transitCloud, pub)
	}
	if err := l.ip(l.Internet, inet); err != nil {
		return err
	}
	if err := l.ip(c.Router, fmt.Sprintf(`addr add %s/30 dev wan0
link set wan0 up
addr add %s/24 dev lan0
link set lan0 up
route add default via %s`, transitCloud, cloudLANGW, transitInet)); err != nil {
		return err
	}
	if err := l.ip(c.Host, fmt.Sprintf(`addr add %s/24 dev eth0
addr add %s/24 dev eth0
link set eth0 up
route add default via %s`, c.PrivateIPs[0], c.PrivateIPs[1], cloudLANGW)); err != nil {
		return err
	}
	return l.nft(c.Router, cloudRules(c))
}

// cloudRules is the edge router's ruleset: each public address DNATed to
// its private one, each private one SNATed to its public one (so answers
// from the alternate address, which are new flows, leave from the right
// public address), and a stateful security group in front of the VM.
func cloudRules(c *CloudServer) string {
	var pre, post strings.Builder
	for i := range c.PublicIPs {
		fmt.Fprintf(&pre, "\n\t\tiifname \"wan0\" ip daddr %s dnat to %s", c.PublicIPs[i], c.PrivateIPs[i])
		fmt.Fprintf(&post, "\n\t\toifname \"wan0\" ip saddr %s snat to %s", c.PrivateIPs[i], c.PublicIPs[i])
	}
	return fmt.Sprintf(`table ip nclab_cloud {
	chain pre {
		type nat hook prerouting priority dstnat;%s
	}
	chain post {
		type nat hook postrouting priority srcnat;%s
	}
	chain securitygroup {
		type filter hook forward priority filter;
		iifname "wan0" ct state established,related accept
		iifname "wan0" ct status dnat meta l4proto { tcp, udp } th dport %s accept
		iifname "wan0" drop
	}
}
`, pre.String(), post.String(), CloudPorts)
}

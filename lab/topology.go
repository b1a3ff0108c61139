package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// topology says how one Kind differs from the common shape
// client -- router [-- carrier] -- internet.
type topology struct {
	public bool // the client has a routed public address (no NAT)
	double bool // a carrier NAT sits between the router and the internet
	// oneClient: the rules forward inbound traffic to 192.168.1.2, so the
	// kind cannot have more than one client (Options.Clients).
	oneClient bool
	// routerRules is the nft ruleset body of the router (the home router
	// for DoubleNAT); "" for none.
	routerRules string
}

// Rule snippets. Interface names are fixed because every veth lives only
// inside the lab's own namespaces: lan0 faces the client, wan0 the internet.
const (
	masquerade = `
	chain natpost {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
	}`
	// Endpoint-independent filtering: any inbound UDP to the WAN address is
	// sent to the (single) client on the same port. Ports are preserved by
	// masquerade, so the mapping and this forward agree.
	inboundToClient = `
	chain natpre {
		type nat hook prerouting priority dstnat;
		iifname "wan0" meta l4proto udp dnat to 192.168.1.2
	}`
)

var topologies = map[Kind]topology{
	NoNAT: {public: true},
	Firewall: {public: true, routerRules: `
	chain filt {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" accept
	}`},
	FullCone: {oneClient: true, routerRules: masquerade + inboundToClient},
	// Address-dependent filtering: outbound UDP records (internal address,
	// internal port, remote IP) in a dynamic set; a new inbound flow passes
	// only if its remote IP was contacted from the port it is sent to (after
	// DNAT, which keeps the port). Keyed per internal endpoint as RFC 4787
	// defines ADF, so one socket's contacts do not open another's mapping.
	RestrictedCone: {oneClient: true, routerRules: masquerade + inboundToClient + `
	set contacted {
		type ipv4_addr . inet_service . ipv4_addr; flags dynamic,timeout; timeout 10m;
	}
	chain filt {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" meta l4proto udp update @contacted { ip saddr . udp sport . ip daddr }
		iifname "lan0" accept
		iifname "wan0" meta l4proto udp ip daddr . udp dport . ip saddr @contacted accept
	}`},
	PortRestrictedCone: {routerRules: masquerade},
	Symmetric: {routerRules: `
	chain natpost {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade random,fully-random
	}`},
	UDPBlocked: {routerRules: masquerade + `
	chain filt {
		type filter hook forward priority filter;
		meta l4proto udp drop
	}`},
	DoubleNAT: {double: true, routerRules: masquerade},
	// Hairpinning: LAN packets to the WAN address are sent back to the
	// client (same port), with the source rewritten to the WAN address so
	// the client sees its peer's mapped address and replies return through
	// the router.
	Hairpin: {oneClient: true, routerRules: `
	chain natpre {
		type nat hook prerouting priority dstnat;
		iifname "lan0" ip daddr 203.0.113.2 meta l4proto { tcp, udp } dnat to 192.168.1.2
	}
	chain natpost {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
		oifname "lan0" ct original ip daddr 203.0.113.2 snat to 203.0.113.2
	}`},
}

// build creates the namespaces, links, addresses, routes and rules.
func (l *Lab) build() error {
	topo := topologies[l.Options.Kind]
	id := strings.TrimSuffix(l.Client, "-client")
	if topo.double {
		l.Carrier = id + "-carrier"
		l.CarrierIP = carrierLAN
	}
	if l.Options.DelayMs > 0 {
		l.Wire = id + "-wire"
	}
	l.ClientIP, l.Gateway, l.PublicIP, l.RouterWAN = natClient, natGateway, routerWAN, routerWAN
	if topo.double {
		l.RouterWAN = homeWAN
	}
	if topo.public {
		l.ClientIP, l.Gateway, l.PublicIP = pubClient, pubGateway, pubClient
	}
	// Client hosts: the first is "client" at .2, the others "client2",
	// "client3", ... at .3, .4, ...
	ip := l.ClientIP
	for i := range max(l.Options.Clients, 1) {
		ns := l.Client
		if i > 0 {
			ns = fmt.Sprintf("%s%d", l.Client, i+1)
		}
		l.Clients = append(l.Clients, ns)
		l.ClientIPs = append(l.ClientIPs, ip)
		ip = ip.Next()
	}

	for _, ns := range append(slices.Clone(l.Clients), l.Router, l.Carrier, l.Wire, l.Internet) {
		if ns == "" {
			continue
		}
		if err := l.addNS(ns); err != nil {
			return err
		}
		if err := l.sysctls(ns); err != nil {
			return err
		}
	}
	edge := l.Router // the router whose wan0 faces the internet
	if topo.double {
		edge = l.Carrier
	}

	// Links. Each veth is created inside a namespace with its peer placed
	// directly in the other one, so nothing ever appears in the root
	// namespace and fixed interface names cannot collide.
	var links [][2]string
	if len(l.Clients) == 1 {
		links = append(links, [2]string{l.Client, "link add eth0 type veth peer name lan0 netns " + l.Router})
	} else {
		// Several clients: lan0 is a bridge, each client's veth one of
		// its ports (lanp1, lanp2, ...), so the router's rules, which
		// name lan0, apply unchanged to every client.
		links = append(links, [2]string{l.Router, "link add lan0 type bridge"})
		for i, ns := range l.Clients {
			links = append(links, [2]string{ns, fmt.Sprintf("link add eth0 type veth peer name lanp%d netns %s", i+1, l.Router)})
		}
		var ports strings.Builder
		for i := range l.Clients {
			fmt.Fprintf(&ports, "link set lanp%d master lan0\nlink set lanp%d up\n", i+1, i+1)
		}
		links = append(links, [2]string{l.Router, strings.TrimSuffix(ports.String(), "\n")})
	}
	if topo.double {
		links = append(links, [2]string{l.Router, "link add wan0 type veth peer name lan0 netns " + l.Carrier})
	}
	if l.Wire != "" {
		links = append(links,
			[2]string{edge, "link add wan0 type veth peer name wire0 netns " + l.Wire},
			[2]string{l.Internet, "link add eth0 type veth peer name wire1 netns " + l.Wire})
	} else {
		links = append(links, [2]string{edge, "link add wan0 type veth peer name eth0 netns " + l.Internet})
	}
	for _, link := range links {
		if err := l.ip(link[0], link[1]); err != nil {
			return err
		}
	}

	// Addresses and routes.
	for i, ns := range l.Clients {
		if err := l.ip(ns, fmt.Sprintf(`addr add %s/24 dev eth0
link set eth0 up
route add default via %s`, l.ClientIPs[i], l.Gateway)); err != nil {
			return err
		}
	}
	router := fmt.Sprintf("addr add %s/24 dev lan0\nlink set lan0 up\nlink set wan0 up\n", l.Gateway)
	if topo.double {
		router += fmt.Sprintf("addr add %s/10 dev wan0\nroute add default via %s", homeWAN, carrierLAN)
	} else {
		router += fmt.Sprintf("addr add %s/24 dev wan0", routerWAN)
	}
	if err := l.ip(l.Router, router); err != nil {
		return err
	}
	if topo.double {
		if err := l.ip(l.Carrier, fmt.Sprintf(`addr add %s/10 dev lan0
link set lan0 up
addr add %s/24 dev wan0
link set wan0 up`, carrierLAN, routerWAN)); err != nil {
			return err
		}
	}
	inet := fmt.Sprintf("addr add %s/24 dev eth0\naddr add %s/24 dev eth0\nlink set eth0 up\n", serverIP1, serverIP2) + voidRoute
	if topo.public {
		inet += fmt.Sprintf("\nroute add %s via %s", pubNet, routerWAN)
	}
	if err := l.ip(l.Internet, inet); err != nil {
		return err
	}

	// Rules.
	if topo.routerRules != "" {
		if err := l.nft(l.Router, "table ip nclab {"+topo.routerRules+"\n}\n"); err != nil {
			return err
		}
	}
	if topo.double {
		if err := l.nft(l.Carrier, "table ip nclab {"+masquerade+"\n}\n"); err != nil {
			return err
		}
	}
	if n := l.Options.LossPercent; n > 0 {
		if err := l.nft(edge, lossRules(n)); err != nil {
			return err
		}
	}
	if l.Wire != "" {
		return l.startWire()
	}
	return nil
}

// lossRules drops n% of IPv4 packets at random in each direction on wan0.
// ARP is not IPv4 and is never dropped, so neighbours still resolve.
func lossRules(n int) string {
	return fmt.Sprintf(`table ip nclab_loss {
	chain lossin {
		type filter hook prerouting priority raw;
		iifname "wan0" numgen random mod 100 < %d drop
	}
	chain lossout {
		type filter hook postrouting priority srcnat + 10;
		oifname "wan0" numgen random mod 100 < %d drop
	}
}
`, n, n)
}

// sysctls makes every lab namespace a predictable router or host: routers
// forward, nobody drops asymmetric traffic, hairpinned packets draw no
// redirects, and ICMP errors (time exceeded for TTL probes) are not rate
// limited. The wire namespace gets no IPv6 so its relay ports stay silent.
func (l *Lab) sysctls(ns string) error {
	return l.setSysctls(ns, ns == l.Router || ns == l.Carrier, ns == l.Wire)
}

// setSysctls sets a namespace up as a router (forwarding, no redirects),
// a wire (no IPv6) or a host; see sysctls.
func (l *Lab) setSysctls(ns string, router, wire bool) error {
	set := map[string]string{
		"net/ipv4/conf/all/rp_filter":     "0",
		"net/ipv4/conf/default/rp_filter": "0",
		"net/ipv4/icmp_ratelimit":         "0",
		// No duplicate address detection: link-local addresses would stay
		// tentative (and neighbour discovery stall) for a second or two
		// after each link comes up. See AddIPv6.
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
	}
	switch {
	case router:
		set["net/ipv4/ip_forward"] = "1"
		set["net/ipv4/conf/all/send_redirects"] = "0"
		set["net/ipv4/conf/default/send_redirects"] = "0"
	case wire:
		set["net/ipv6/conf/all/disable_ipv6"] = "1"
		set["net/ipv6/conf/default/disable_ipv6"] = "1"
	}
	return l.Do(ns, func() error {
		for k, v := range set {
			// /proc/sys/net resolves to the namespace of the opening thread.
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", k, ns, err)
			}
		}
		return nil
	})
}

// voidRoute is the internet namespace's default route: into a link where
// packets vanish, as packets to private or unassigned addresses do on the
// real internet (a send succeeds, nothing answers). Without it a send from
// the internet to an address it has no route for fails at once with
// ENETUNREACH, which servers on the real internet never see: coturn, for
// one, then tears down the allocation that relayed it, so every ICE check
// through its relay after a check toward a peer's private host candidate
// was lost.
const voidRoute = `link add void0 type veth peer name void1
link set void0 up
link set void1 up
addr add 198.18.255.1/30 dev void0
neigh add 198.18.255.2 lladdr 02:00:00:00:00:01 dev void0 nud permanent
route add default via 198.18.255.2 dev void0`

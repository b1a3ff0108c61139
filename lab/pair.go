package lab

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// Two sites for two-sided tests (natcheck peer): A and B, each a client
// behind its own router of its own Kind, both routers on the lab's
// internet next to the server namespace; or both clients behind one
// router (SameLAN), with or without hairpinning. See docs/lab.md ("Two
// sites").
//
//	clientA (eth0) ── (lan0) routerA (wan0) ── [wireA] ──┐
//	                                                    (eth0: a bridge) internet  203.0.113.1, .10, .11
//	clientB (eth0) ── (lan0) routerB (wan0) ── [wireB] ──┘

// PairOptions choose the two sites of a Pair.
type PairOptions struct {
	// A and B are the sites' kinds: NoNAT ("open"), Firewall, FullCone,
	// RestrictedCone, PortRestrictedCone, Symmetric or UDPBlocked. With
	// SameLAN, A is the one router's kind (default PortRestrictedCone) and
	// B must be empty or equal to A.
	A, B Kind
	// SameLAN puts both clients on one LAN behind one router (A's kind):
	// client A at .2, client B at .3.
	SameLAN bool
	// Hairpin (SameLAN only, NAT kinds with endpoint-independent
	// mapping): a LAN packet to the router's public address is sent to the
	// client that owns that port's mapping, from the sender's mapping.
	Hairpin bool
	// RouterAnswers: the routers answer unsolicited inbound UDP to
	// themselves the way Linux does by default (ICMP port unreachable from
	// the kernel), which leaves a conntrack entry for the sender's tuple.
	// Default false: the routers drop it silently (nft, before conntrack
	// confirms an entry). See docs/lab.md for the trap this is.
	RouterAnswers bool
	// DelayMs is the one-way delay between A and B: each WAN link holds
	// every frame DelayMs/2 (labwire), so the A-B round trip is
	// 2*DelayMs and each site's round trip to the servers DelayMs. With
	// SameLAN the one WAN link holds DelayMs (A and B are on the LAN).
	DelayMs int
	// LossPercent is the loss between A and B, each way: each WAN link
	// drops 1-sqrt(1-p) of IPv4 packets in each direction, so a datagram
	// from A to B (two WAN links) is lost with probability LossPercent%.
	// A site's exchange with the servers crosses one link: about half
	// that. With SameLAN the one WAN link drops LossPercent% each way.
	LossPercent int
}

// Site is one side of a Pair.
type Site struct {
	Kind   Kind
	Client string // the client's namespace
	Router string // its router's namespace (shared with SameLAN)
	Wire   string // the delay relay on its WAN link; "" without DelayMs
	// ClientIP is the client's own address, PublicIP the one the internet
	// (and the other site) sees, Gateway its router's LAN address and
	// RouterWAN the router's WAN address.
	ClientIP, PublicIP, Gateway, RouterWAN netip.Addr
}

// Pair is a two-site lab. The embedded Lab holds the internet namespace
// and its servers' addresses, and is site A's view for the helpers that
// name one site (Client, Router, ClientIP, PublicIP are A's); Command,
// Start, Do, ListenUDP, StartCoturn, AddHosts and DropUDP work on any
// namespace of the pair. AddIPv6, SetUDPTimeout and UPnP do not know
// about site B and are not for pairs.
type Pair struct {
	*Lab
	A, B        Site
	PairOptions PairOptions
}

// Addresses of the pair. Site A keeps the single-site lab's addresses;
// site B has its own LAN, WAN and public range.
var (
	inetGateway = netip.MustParseAddr("203.0.113.1") // the internet's router, on the WAN segment
	routerWANB  = netip.MustParseAddr("203.0.113.3")
	natClientB  = netip.MustParseAddr("192.168.2.2")
	natGatewayB = netip.MustParseAddr("192.168.2.1")
	pubClientB  = netip.MustParseAddr("192.0.2.2")
	pubGatewayB = netip.MustParseAddr("192.0.2.1")
	pubNetB     = netip.MustParsePrefix("192.0.2.0/24")
)

// PairKinds are the kinds a site of a Pair may have.
var PairKinds = []Kind{NoNAT, Firewall, FullCone, RestrictedCone, PortRestrictedCone, Symmetric, UDPBlocked}

// NewPair builds two sites (or one LAN with two clients) and registers
// the teardown with t.Cleanup. It skips (fails with NATCHECK_LAB=1) where
// the lab cannot run.
func NewPair(t testing.TB, o PairOptions) *Pair {
	t.Helper()
	Require(t)
	if o.SameLAN && o.A == "" {
		o.A = PortRestrictedCone
	}
	for _, k := range []Kind{o.A, o.B} {
		if k == "" && o.SameLAN {
			continue
		}
		if !kindIn(k, PairKinds) {
			t.Fatalf("lab: pair site kind %q (want one of %v)", k, PairKinds)
		}
	}
	switch {
	case o.SameLAN && o.B != "" && o.B != o.A:
		t.Fatalf("lab: SameLAN has one router: kinds %s and %s", o.A, o.B)
	case o.SameLAN && topologies[o.A].oneClient:
		t.Fatalf("lab: %s forwards inbound traffic to one client; it cannot have two", o.A)
	case o.Hairpin && !o.SameLAN:
		t.Fatal("lab: Hairpin is for SameLAN (a router hairpins for its own LAN)")
	case o.Hairpin && !kindIn(o.A, []Kind{PortRestrictedCone}):
		t.Fatalf("lab: Hairpin needs a NAT with endpoint-independent mapping and port preservation (port-restricted-cone), not %s", o.A)
	case o.LossPercent < 0 || o.LossPercent >= 100 || o.DelayMs < 0:
		t.Fatalf("lab: bad pair options %+v", o)
	}
	if o.SameLAN {
		o.B = o.A
	}
	cleanStaleOnce.Do(cleanStale)

	id := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), labSeq.Add(1))
	p := &Pair{Lab: &Lab{
		Internet:  id + "-inet",
		ServerIPs: [2]netip.Addr{serverIP1, serverIP2},
		Options:   Options{Kind: o.A, DelayMs: o.DelayMs, LossPercent: o.LossPercent},
		t:         t,
	}, PairOptions: o}
	t.Cleanup(p.teardown)
	start := time.Now()
	if err := p.build(id); err != nil {
		t.Fatalf("lab pair %s/%s: %v", o.A, o.B, err)
	}
	l := p.Lab
	l.Client, l.Router, l.Wire = p.A.Client, p.A.Router, p.A.Wire
	l.ClientIP, l.PublicIP, l.Gateway, l.RouterWAN = p.A.ClientIP, p.A.PublicIP, p.A.Gateway, p.A.RouterWAN
	l.Clients = []string{p.A.Client, p.B.Client}
	l.ClientIPs = []netip.Addr{p.A.ClientIP, p.B.ClientIP}
	t.Logf("lab pair %s built in %v: A %s %s (public %s) in %s, B %s %s (public %s) in %s",
		p.describe(), time.Since(start).Round(time.Millisecond),
		p.A.Kind, p.A.ClientIP, p.A.PublicIP, p.A.Client, p.B.Kind, p.B.ClientIP, p.B.PublicIP, p.B.Client)
	return p
}

func kindIn(k Kind, ks []Kind) bool {
	for _, x := range ks {
		if k == x {
			return true
		}
	}
	return false
}

// describe is a short summary of the options, for logs.
func (p *Pair) describe() string {
	o := p.PairOptions
	s := fmt.Sprintf("%s x %s", o.A, o.B)
	if o.SameLAN {
		s = fmt.Sprintf("same LAN behind %s", o.A)
		if o.Hairpin {
			s += " (hairpin)"
		}
	}
	if o.RouterAnswers {
		s += ", routers answer"
	} else {
		s += ", routers drop"
	}
	return s + fmt.Sprintf(", delay %d ms, loss %d%%", o.DelayMs, o.LossPercent)
}

// build creates every namespace, link, address, route and rule.
func (p *Pair) build(id string) error {
	o := p.PairOptions
	l := p.Lab
	a := Site{Kind: o.A, Client: id + "-a-client", Router: id + "-a-router", RouterWAN: routerWAN}
	b := Site{Kind: o.B, Client: id + "-b-client", Router: id + "-b-router", RouterWAN: routerWANB}
	if o.SameLAN {
		a.Client, a.Router = id+"-client", id+"-router"
		b.Client, b.Router, b.RouterWAN = id+"-client2", a.Router, routerWAN
	}
	if o.DelayMs > 0 {
		a.Wire = id + "-a-wire"
		if !o.SameLAN {
			b.Wire = id + "-b-wire"
		}
	}
	a.ClientIP, a.Gateway, a.PublicIP = natClient, natGateway, a.RouterWAN
	if topologies[a.Kind].public {
		a.ClientIP, a.Gateway, a.PublicIP = pubClient, pubGateway, pubClient
	}
	switch {
	case o.SameLAN:
		b.Gateway = a.Gateway
		b.ClientIP = a.ClientIP.Next()
		b.PublicIP = a.PublicIP
		if topologies[b.Kind].public {
			b.PublicIP = b.ClientIP
		}
	case topologies[b.Kind].public:
		b.ClientIP, b.Gateway, b.PublicIP = pubClientB, pubGatewayB, pubClientB
	default:
		b.ClientIP, b.Gateway, b.PublicIP = natClientB, natGatewayB, b.RouterWAN
	}
	p.A, p.B = a, b

	sites := []*Site{&p.A, &p.B}
	if o.SameLAN {
		sites = sites[:1]
	}
	type nsRole struct {
		ns           string
		router, wire bool
	}
	roles := []nsRole{{ns: a.Client}, {ns: b.Client}}
	for _, s := range sites {
		roles = append(roles, nsRole{ns: s.Router, router: true})
		if s.Wire != "" {
			roles = append(roles, nsRole{ns: s.Wire, wire: true})
		}
	}
	// The internet forwards between the WAN segment and the open sites'
	// public ranges.
	roles = append(roles, nsRole{ns: l.Internet, router: true})
	for _, r := range roles {
		if err := l.addNS(r.ns); err != nil {
			return err
		}
		if err := l.setSysctls(r.ns, r.router, r.wire); err != nil {
			return err
		}
	}

	// The internet's eth0 is a bridge: the WAN segment both routers (or
	// their wires) plug into, as ports wana and wanb.
	if err := l.ip(l.Internet, "link add eth0 type bridge"); err != nil {
		return err
	}
	ports := ""
	for i, s := range sites {
		port := []string{"wana", "wanb"}[i]
		ports += fmt.Sprintf("link set %s master eth0\nlink set %s up\n", port, port)
		var links [][2]string
		if o.SameLAN {
			links = append(links, [2]string{s.Router, "link add lan0 type bridge"},
				[2]string{a.Client, "link add eth0 type veth peer name lanp1 netns " + s.Router},
				[2]string{b.Client, "link add eth0 type veth peer name lanp2 netns " + s.Router},
				[2]string{s.Router, "link set lanp1 master lan0\nlink set lanp1 up\nlink set lanp2 master lan0\nlink set lanp2 up"})
		} else {
			links = append(links, [2]string{s.Client, "link add eth0 type veth peer name lan0 netns " + s.Router})
		}
		if s.Wire != "" {
			links = append(links,
				[2]string{s.Router, "link add wan0 type veth peer name wire0 netns " + s.Wire},
				[2]string{l.Internet, fmt.Sprintf("link add %s type veth peer name wire1 netns %s", port, s.Wire)})
		} else {
			links = append(links, [2]string{s.Router, fmt.Sprintf("link add wan0 type veth peer name %s netns %s", port, l.Internet)})
		}
		for _, link := range links {
			if err := l.ip(link[0], link[1]); err != nil {
				return err
			}
		}
	}
	inet := ports + fmt.Sprintf("addr add %s/24 dev eth0\naddr add %s/24 dev eth0\naddr add %s/24 dev eth0\nlink set eth0 up\n",
		inetGateway, serverIP1, serverIP2) + voidRoute
	for _, s := range sites {
		if topologies[s.Kind].public {
			inet += fmt.Sprintf("\nroute add %s via %s", netip.PrefixFrom(s.ClientIP, 24).Masked(), s.RouterWAN)
		}
	}
	if err := l.ip(l.Internet, inet); err != nil {
		return err
	}

	// Addresses and routes of clients and routers.
	for _, c := range []Site{a, b} {
		if err := l.ip(c.Client, fmt.Sprintf("addr add %s/24 dev eth0\nlink set eth0 up\nroute add default via %s",
			c.ClientIP, c.Gateway)); err != nil {
			return err
		}
	}
	for _, s := range sites {
		if err := l.ip(s.Router, fmt.Sprintf("addr add %s/24 dev lan0\nlink set lan0 up\naddr add %s/24 dev wan0\nlink set wan0 up\nroute add default via %s",
			s.Gateway, s.RouterWAN, inetGateway)); err != nil {
			return err
		}
		if err := l.nft(s.Router, p.routerRules(*s)); err != nil {
			return err
		}
		if n := o.LossPercent; n > 0 {
			per10k := n * 100
			if !o.SameLAN {
				// Two links in series: 1-(1-q)^2 = p.
				per10k = int(math.Round(10000 * (1 - math.Sqrt(1-float64(n)/100))))
			}
			if err := l.nft(s.Router, lossRules10k(per10k)); err != nil {
				return err
			}
		}
		if s.Wire != "" {
			delay := time.Duration(o.DelayMs) * time.Millisecond
			if !o.SameLAN {
				delay /= 2
			}
			if err := l.startWireIn(s.Wire, delay); err != nil {
				return err
			}
		}
	}
	return nil
}

// routerRules is the nft ruleset of a site's router: its kind's rules
// (with the site's own client and WAN addresses), the hairpin for a shared
// LAN, and the policy for unsolicited UDP to the router itself.
func (p *Pair) routerRules(s Site) string {
	o := p.PairOptions
	body := strings.NewReplacer(natClient.String(), s.ClientIP.String(), routerWAN.String(), s.RouterWAN.String()).
		Replace(topologies[s.Kind].routerRules)
	if o.Hairpin {
		// Masquerade preserves ports, so the owner of a public port is
		// the LAN host that last sent from that local port.
		body += fmt.Sprintf(`
	map owners {
		type inet_service : ipv4_addr; flags dynamic,timeout; timeout 10m;
	}
	chain owner {
		type filter hook prerouting priority mangle;
		iifname "lan0" meta l4proto udp update @owners { udp sport : ip saddr }
	}
	chain hairpre {
		type nat hook prerouting priority dstnat;
		iifname "lan0" ip daddr %[1]s meta l4proto udp dnat to udp dport map @owners
	}
	chain hairpost {
		type nat hook postrouting priority srcnat - 1;
		oifname "lan0" ct original ip daddr %[1]s snat to %[1]s
	}`, s.RouterWAN)
	}
	rules := ""
	if body != "" {
		rules = "table ip nclab {" + body + "\n}\n"
	}
	if !o.RouterAnswers {
		// A packet dropped in the filter hook never has its conntrack
		// entry confirmed: the router keeps no trace of it. (nft reject
		// would drop it too; only the kernel's own ICMP answer, after the
		// packet was accepted for local delivery, leaves the entry.)
		rules += `table ip nclab_quiet {
	chain input {
		type filter hook input priority filter;
		iifname "wan0" meta l4proto udp ct state new drop
	}
}
`
	}
	if rules == "" {
		rules = "table ip nclab {\n}\n"
	}
	return rules
}

// lossRules10k drops per10k/10000 of IPv4 packets at random in each
// direction on wan0.
func lossRules10k(per10k int) string {
	return fmt.Sprintf(`table ip nclab_loss {
	chain lossin {
		type filter hook prerouting priority raw;
		iifname "wan0" numgen random mod 10000 < %d drop
	}
	chain lossout {
		type filter hook postrouting priority srcnat + 10;
		oifname "wan0" numgen random mod 10000 < %d drop
	}
}
`, per10k, per10k)
}

// Conntrack lists the UDP conntrack entries of namespace ns (a router),
// as `conntrack -L -p udp` prints them; "" if there are none. It fails
// the test if conntrack (Debian package conntrack) is missing.
func (l *Lab) Conntrack(t testing.TB, ns string) string {
	t.Helper()
	out, err := l.Command(t.Context(), ns, "conntrack", "-L", "-p", "udp").Output()
	if err != nil {
		t.Fatalf("conntrack -L in %s: %v", ns, err)
	}
	return strings.TrimSpace(string(out))
}

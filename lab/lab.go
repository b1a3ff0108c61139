// Package lab builds real Linux NAT topologies in network namespaces for end-to-end tests.
package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Kind names a topology; each has a known RFC 4787 behaviour (see docs/lab.md).
type Kind string

// The topologies the lab can build.
const (
	NoNAT              Kind = "no-nat"               // routed public client, no NAT, no filter
	Firewall           Kind = "firewall"             // routed public client behind a stateful firewall
	FullCone           Kind = "full-cone"            // EIM / EIF
	RestrictedCone     Kind = "restricted-cone"      // EIM / ADF
	PortRestrictedCone Kind = "port-restricted-cone" // EIM / APDF (plain masquerade)
	Symmetric          Kind = "symmetric"            // APDM / APDF (fully random ports)
	UDPBlocked         Kind = "udp-blocked"          // masquerade, forwarded UDP dropped
	DoubleNAT          Kind = "double-nat"           // home NAT behind a carrier NAT on 100.64.0.0/10
	Hairpin            Kind = "hairpin"              // port-restricted cone that hairpins
)

// Kinds lists every topology, in a stable order, for table-driven tests.
var Kinds = []Kind{NoNAT, Firewall, FullCone, RestrictedCone, PortRestrictedCone,
	Symmetric, UDPBlocked, DoubleNAT, Hairpin}

// Options choose a topology and the quality of its WAN link.
type Options struct {
	Kind Kind
	// LossPercent drops that share of IPv4 packets, at random, in each
	// direction on the WAN of the router facing the internet (0-100).
	LossPercent int
	// DelayMs delays every frame on the WAN link by this many milliseconds
	// in each direction (so the round trip grows by 2*DelayMs).
	DelayMs int
	// UPnP runs miniupnpd on the (home) router: see StartMiniUPnPd and
	// Lab.MiniUPnPd.
	UPnP bool
	// Clients is the number of client hosts, each its own namespace on
	// one LAN (a bridge in the router) behind the one router: many users
	// behind one public address. 0 means 1. More than one is refused for
	// the kinds that forward inbound traffic to one fixed client
	// (full-cone, restricted-cone, hairpin). At most MaxClients.
	Clients int
}

// MaxClients bounds Options.Clients: the LAN is a /24 and the router
// holds .1.
const MaxClients = 200

// Lab is one built topology. Namespace names are unique per Lab, so labs in
// parallel tests and in parallel test processes never collide.
type Lab struct {
	Client, Router, Carrier, Internet string // namespace names; Carrier is "" unless DoubleNAT
	// Clients and ClientIPs list every client host (Options.Clients of
	// them); Clients[0] is Client and ClientIPs[0] is ClientIP.
	Clients   []string
	ClientIPs []netip.Addr
	// Wire is the namespace of the delay relay between the WAN and the
	// internet; "" unless DelayMs > 0.
	Wire string

	ClientIP  netip.Addr    // the client's own address
	PublicIP  netip.Addr    // the address the internet sees the client as
	ServerIPs [2]netip.Addr // 203.0.113.10 and 203.0.113.11, both in Internet
	Gateway   netip.Addr    // the client's default gateway (router LAN address)
	// RouterWAN is the (home) router's own WAN address: PublicIP, except
	// for DoubleNAT where it is 100.64.0.2 (what UPnP/NAT-PMP would report).
	RouterWAN netip.Addr
	// CarrierIP is the carrier router's inside address (100.64.0.1), the
	// second hop of a DoubleNAT; invalid otherwise.
	CarrierIP netip.Addr

	Options Options

	t   testing.TB
	nss []string // every namespace created, for teardown
}

// Fixed addresses of the lab. They are documentation and shared ranges, and
// only ever exist inside the lab's namespaces.
var (
	serverIP1  = netip.MustParseAddr("203.0.113.10")
	serverIP2  = netip.MustParseAddr("203.0.113.11")
	routerWAN  = netip.MustParseAddr("203.0.113.2")
	natClient  = netip.MustParseAddr("192.168.1.2")
	natGateway = netip.MustParseAddr("192.168.1.1")
	pubClient  = netip.MustParseAddr("198.51.100.2")
	pubGateway = netip.MustParseAddr("198.51.100.1")
	pubNet     = netip.MustParsePrefix("198.51.100.0/24")
	homeWAN    = netip.MustParseAddr("100.64.0.2")
	carrierLAN = netip.MustParseAddr("100.64.0.1")
)

// namePrefix marks every namespace the lab creates; stale-namespace cleanup
// only ever looks at names with this prefix.
const namePrefix = "nclab-"

var labSeq atomic.Int64

// New builds the topology o.Kind and registers its teardown with t.Cleanup.
// It skips (or fails, with NATCHECK_LAB=1) when the lab cannot run here.
func New(t testing.TB, o Options) *Lab {
	t.Helper()
	Require(t)
	if _, ok := topologies[o.Kind]; !ok {
		t.Fatalf("lab: unknown kind %q", o.Kind)
	}
	if o.LossPercent < 0 || o.LossPercent > 100 || o.DelayMs < 0 || o.Clients < 0 || o.Clients > MaxClients {
		t.Fatalf("lab: bad options %+v", o)
	}
	if o.Clients > 1 && topologies[o.Kind].oneClient {
		t.Fatalf("lab: %s forwards inbound traffic to one client; it cannot have %d", o.Kind, o.Clients)
	}
	cleanStaleOnce.Do(cleanStale)

	id := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), labSeq.Add(1))
	l := &Lab{
		Client:    id + "-client",
		Router:    id + "-router",
		Internet:  id + "-inet",
		ServerIPs: [2]netip.Addr{serverIP1, serverIP2},
		Options:   o,
		t:         t,
	}
	t.Cleanup(l.teardown)
	start := time.Now()
	if err := l.build(); err != nil {
		t.Fatalf("lab %s: %v", o.Kind, err)
	}
	if o.UPnP {
		l.StartMiniUPnPd(t)
	}
	more := ""
	if n := len(l.Clients); n > 1 {
		more = fmt.Sprintf(" (and %d more, to %s)", n-1, l.ClientIPs[n-1])
	}
	t.Logf("lab %s (loss %d%%, delay %dms) built in %v: client %s in %s%s",
		o.Kind, o.LossPercent, o.DelayMs, time.Since(start).Round(time.Millisecond), l.ClientIP, l.Client, more)
	return l
}

// Command returns a command that runs name inside namespace ns.
func (l *Lab) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// addNS creates a namespace with loopback up and records it for teardown.
func (l *Lab) addNS(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	l.nss = append(l.nss, name)
	return l.ip(name, "link set lo up")
}

// ip runs one or more `ip` commands (one per line) inside ns in a single process.
func (l *Lab) ip(ns string, batch string) error {
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s: %v: %s\nbatch:\n%s", ns, err, strings.TrimSpace(string(out)), batch)
	}
	return nil
}

// nft loads a ruleset into ns.
func (l *Lab) nft(ns string, ruleset string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s\nruleset:\n%s", ns, err, strings.TrimSpace(string(out)), ruleset)
	}
	return nil
}

// teardown kills whatever still runs in the lab's namespaces and deletes them.
func (l *Lab) teardown() {
	for i := len(l.nss) - 1; i >= 0; i-- {
		if err := deleteNS(l.nss[i]); err != nil {
			l.t.Errorf("lab teardown: %v", err)
		}
	}
	l.nss = nil
}

// deleteNS kills the processes left inside a lab namespace, then deletes it.
// Only called for names the lab itself made.
func deleteNS(name string) error {
	if !strings.HasPrefix(name, namePrefix) {
		return fmt.Errorf("refusing to delete namespace %q: not a lab namespace", name)
	}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
				_ = killPid(pid)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

package probe

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4/vnet"
)

// These tests never touch the host's DNS: every name goes to a resolver on
// loopback that never answers (SilentResolver) or answers from a table
// (DNSResolver: NXDOMAIN for any other name).

func names(t *testing.T, ss ...string) []stunclient.Server {
	t.Helper()
	var out []stunclient.Server
	for _, s := range ss {
		srv, err := stunclient.ParseServer(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, srv)
	}
	return out
}

// A name whose lookup hangs, listed first, beside two literal servers:
// the test runs with the literals at once, as if the name were a dead
// server, and ends long before the lookup's own deadline.
func TestRunTypeHangingNameDoesNotBlock(t *testing.T) {
	n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointAddrPortDependent), honest)
	list := names(t, "stun.hangs.test", servers[0].String(), "1.2.3.5:3478")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := RunType(ctx, TypeOptions{Servers: list, Net: n, Resolver: stuntest.SilentResolver(t)})
	if err != nil {
		t.Fatalf("RunType: %v", err)
	}
	if res.Type != nat.TypePortRestrictedCone || len(res.Servers) != 2 {
		t.Errorf("type %s servers %v; want %s with the two literals", res.Type, res.Servers, nat.TypePortRestrictedCone)
	}
	if res.Duration > time.Second {
		t.Errorf("took %v: the hanging lookup (deadline 1.5s) held the run", res.Duration)
	}
}

// A name that resolves while the binding round runs still joins it.
func TestRunTypeLateNameJoins(t *testing.T) {
	n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointAddrPortDependent), noRFC5780)
	r := stuntest.SlowDNSResolver(t, 150*time.Millisecond, map[string][]netip.Addr{"late.test": {netip.MustParseAddr("1.2.3.5")}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := RunType(ctx, TypeOptions{Servers: names(t, servers[0].String(), "late.test:3478"), Net: n, Resolver: r})
	if err != nil {
		t.Fatalf("RunType: %v", err)
	}
	late := netip.MustParseAddrPort("1.2.3.5:3478")
	joined := false
	for _, tr := range res.Tests {
		joined = joined || (tr.To == late && tr.Replied)
	}
	if len(res.Servers) != 2 || res.Servers[1] != late || !joined {
		t.Errorf("servers %v; want the late name's %s asked and answered\n%+v", res.Servers, late, res.Tests)
	}
}

// Two names of one address are one server, as two literals are.
func TestRunTypeNamesOfOneAddressAreOneServer(t *testing.T) {
	n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), honest)
	r := stuntest.DNSResolver(t, map[string][]netip.Addr{"a.test": {servers[0].Addr()}, "b.test": {servers[0].Addr()}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := RunType(ctx, TypeOptions{Servers: names(t, "a.test", "b.test", servers[0].String()), Net: n, Resolver: r})
	if err != nil {
		t.Fatalf("RunType: %v", err)
	}
	if len(res.Servers) != 1 || res.Servers[0] != servers[0] {
		t.Errorf("servers %v, want only %s", res.Servers, servers[0])
	}
}

// No name resolves: the error says DNS is the cause, and a hanging
// resolver costs the lookups' deadline, not the whole time limit.
func TestRunTypeNoNameResolves(t *testing.T) {
	n, _ := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), honest)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := RunType(ctx, TypeOptions{Servers: names(t, "a.hangs.test", "b.hangs.test"), Net: n, Resolver: stuntest.SilentResolver(t)})
	took := time.Since(start)
	var u *stunclient.UnresolvedError
	if !errors.As(err, &u) || !errors.Is(err, stunclient.ErrNoAnswer) || !errors.Is(err, stunclient.ErrDNSTimeout) {
		t.Fatalf("err = %v, want an UnresolvedError of DNS timeouts", err)
	}
	if !strings.HasPrefix(err.Error(), "DNS could not resolve any server name: is this host offline? (a.hangs.test: DNS gave no answer within") {
		t.Errorf("err = %q", err)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("took %v, want about 1s (half of the 2s)", took)
	}

	start = time.Now()
	_, err = RunType(context.Background(), TypeOptions{Servers: names(t, "nothere.test"), Net: n, Resolver: stuntest.DNSResolver(t, nil)})
	if !errors.Is(err, stunclient.ErrNoSuchHost) || strings.Contains(err.Error(), "offline") {
		t.Errorf("NXDOMAIN: err = %v", err)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("NXDOMAIN: took %v; with nothing to ask, STUN over TCP must not be waited for", took)
	}
}

// A dead literal beside a name that does not exist: no answer, and the
// error names the name's real cause.
func TestRunTypeNoAnswerNamesDNSCause(t *testing.T) {
	n, _ := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), honest)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	_, err := RunType(ctx, TypeOptions{Servers: names(t, "1.2.3.9:3478", "nothere.test"), Net: n, Resolver: stuntest.DNSResolver(t, nil)})
	want := "no STUN server answered (1 asked over UDP, then TCP; 1 not resolved: nothere.test: no such host (DNS says the name does not exist))"
	if !errors.Is(err, stunclient.ErrNoAnswer) || err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

func TestWhoAmIDNS(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Hanging names beside a live literal: answered at once.
	w, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: names(t, "a.hangs.test", s.Addr.String()), Resolver: stuntest.SilentResolver(t)})
	if err != nil || w.Elapsed > 500*time.Millisecond {
		t.Fatalf("with a live literal: %v after %v", err, w.Elapsed)
	}
	// Names only, none resolves: DNS is the cause.
	start := time.Now()
	_, err = RunWhoAmI(ctx, WhoAmIOptions{Servers: names(t, "a.hangs.test", "b.hangs.test"), Resolver: stuntest.SilentResolver(t)})
	if !errors.Is(err, stunclient.ErrDNSTimeout) || !strings.Contains(err.Error(), "is this host offline?") {
		t.Errorf("hanging: %v", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("hanging: took %v, want the lookups' deadline (under 1s)", took)
	}
	_, err = RunWhoAmI(context.Background(), WhoAmIOptions{Servers: names(t, "nothere.test"), Resolver: stuntest.DNSResolver(t, nil)})
	if !errors.Is(err, stunclient.ErrNoSuchHost) || !strings.Contains(err.Error(), "nothere.test: no such host") {
		t.Errorf("NXDOMAIN: %v", err)
	}
}

// The other probers say the same cause.
func TestProbersSayDNSCause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	silent := stuntest.SilentResolver(t)
	nx := stuntest.DNSResolver(t, map[string][]netip.Addr{"v4only.test": {netip.MustParseAddr("192.0.2.1")}})
	if _, err := RunTCPMapping(ctx, TCPMappingOptions{Servers: names(t, "a.hangs.test"), Family: stunclient.IPv4, Resolver: silent}); !errors.As(err, new(*stunclient.UnresolvedError)) || !errors.Is(err, stunclient.ErrDNSTimeout) {
		t.Errorf("tcp: %v", err)
	}
	if _, err := lifetime.Measure(ctx, lifetime.Options{Servers: names(t, "nothere.test"), Family: stunclient.IPv4, Resolver: nx}); !errors.Is(err, stunclient.ErrNoSuchHost) || !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Errorf("lifetime: %v", err)
	}
	cs := CheckServers(ctx, nil, nx, stunclient.IPv4, names(t, "nothere.test"))
	if !errors.Is(cs[0].Err, stunclient.ErrNoSuchHost) {
		t.Errorf("servers check: %v", cs[0].Err)
	}
	c, err := CheckIPv6(ctx, IPv6Options{Servers: names(t, "v4only.test"), Resolver: nx})
	if err != nil || c.STUN != IPv6NoServer || !errors.Is(c.Err, stunclient.ErrNoAddress) {
		t.Errorf("ipv6, no AAAA: %v %+v", err, c)
	}
	c, err = CheckIPv6(ctx, IPv6Options{Servers: names(t, "a.hangs.test"), Resolver: silent})
	if err != nil || c.STUN != IPv6NoAnswer || !errors.Is(c.Err, stunclient.ErrDNSTimeout) {
		t.Errorf("ipv6, hanging DNS: %v %+v", err, c)
	}
}

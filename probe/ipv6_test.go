package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func checkIPv6(t *testing.T, servers ...stunclient.Server) *IPv6Check {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := CheckIPv6(ctx, IPv6Options{Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIPv6RoutedWhenServersSeeTheHostsOwnAddress(t *testing.T) {
	s := stuntest.Start(t, "::1", stuntest.Behaviour{})
	c := checkIPv6(t, stuntest.ServerAt(t, s.Addr))
	if c.STUN != IPv6Works || c.Path != PathRouted || c.Public.Addr() != netip.IPv6Loopback() || c.PortPreserved != tri.Unknown {
		t.Errorf("stun %s path %s public %s preserved %v; want works, routed, ::1, not judged", c.STUN, c.Path, c.Public, c.PortPreserved)
	}
}

func TestIPv6TranslatedWhenServersSeeAnotherAddress(t *testing.T) {
	s := stuntest.Start(t, "::1", stuntest.Behaviour{Mapped: func(from netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("2001:db8:ff::2"), from.Port())
	}})
	c := checkIPv6(t, stuntest.ServerAt(t, s.Addr))
	if c.STUN != IPv6Works || c.Path != PathTranslated || c.PortPreserved != tri.Yes {
		t.Errorf("stun %s path %s preserved %v; want works, translated, port kept", c.STUN, c.Path, c.PortPreserved)
	}
}

func TestIPv6Failures(t *testing.T) {
	dead := stuntest.Dead(t, "::1")
	for _, tc := range []struct {
		name   string
		server stunclient.Server
		want   IPv6Status
	}{
		{"ipv4-only server", stunclient.Server{Input: "127.0.0.1", Host: "127.0.0.1", Port: 3478}, IPv6NoServer},
		{"silent server", stuntest.ServerAt(t, dead), IPv6NoAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			c, err := CheckIPv6(ctx, IPv6Options{Servers: []stunclient.Server{tc.server}})
			if err != nil {
				t.Fatal(err)
			}
			if c.STUN != tc.want || c.Path != PathUnknown || c.Err == nil {
				t.Errorf("stun %s path %s err %v; want %s, unknown, an error", c.STUN, c.Path, c.Err, tc.want)
			}
		})
	}
}

func TestSplitIPv6(t *testing.T) {
	var in []nat.HostAddr
	for _, a := range []string{"192.0.2.1", "::ffff:192.0.2.1", "::1", "fe80::1", "fd00:1::2", "2001:db8:1::2"} {
		in = append(in, nat.HostAddr{Addr: netip.MustParseAddr(a), Iface: "eth0"})
	}
	g, u := splitIPv6(in)
	if len(g) != 1 || g[0].String() != "2001:db8:1::2" || len(u) != 1 || u[0].String() != "fd00:1::2" {
		t.Errorf("global %v ula %v", g, u)
	}
}

package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// Ground truth of AddIPv6: the source address a server sees is the
// client's own in routed mode and the router's WAN address with NAT66, and
// the server's reply gets back to the client.
func TestIPv6Modes(t *testing.T) {
	for _, mode := range []IPv6Mode{IPv6Routed, IPv6NAT66, IPv6NPT} {
		t.Run(string(mode), func(t *testing.T) {
			l := New(t, Options{Kind: PortRestrictedCone})
			v := l.AddIPv6(mode)
			srv, err := l.ListenUDP6(l.Internet, "["+v.ServerIPs[1].String()+"]:3478")
			if err != nil {
				t.Fatal(err)
			}
			cli, err := l.ListenUDP6(l.Client, "[::]:0")
			if err != nil {
				t.Fatal(err)
			}
			send(t, cli, netip.AddrPortFrom(v.ServerIPs[1], 3478), "hello")
			_, from, ok := recv(t, srv, 5*time.Second)
			if !ok || from.Addr() != v.PublicIP {
				t.Fatalf("server saw %v (ok %v), want %s", from, ok, v.PublicIP)
			}
			send(t, srv, from, "back")
			if p, _, ok := recv(t, cli, 5*time.Second); !ok || p != "back" {
				t.Errorf("reply did not reach the client: %q %v", p, ok)
			}
		})
	}
}

func TestSetUDPTimeout(t *testing.T) {
	l := New(t, Options{Kind: DoubleNAT})
	l.SetUDPTimeout(7*time.Second, 9*time.Second)
	for _, ns := range []string{l.Router, l.Carrier} {
		err := l.Do(ns, func() error {
			for file, want := range map[string]string{"nf_conntrack_udp_timeout": "7", "nf_conntrack_udp_timeout_stream": "9"} {
				b, err := os.ReadFile("/proc/sys/net/netfilter/" + file)
				if err != nil {
					return err
				}
				if got := strings.TrimSpace(string(b)); got != want {
					t.Errorf("%s in %s = %s, want %s", file, ns, got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

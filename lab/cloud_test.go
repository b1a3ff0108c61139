package lab

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestCloudServer is the cloud site's ground truth, with plain sockets: the
// public addresses reach the private ones 1:1 with ports kept, the VM sees
// the client as it is (DNAT only), a datagram the VM starts from its
// alternate address leaves from the matching public address (SNAT), TCP
// passes too, and the security group drops a port it does not open. In a
// single-site lab and in a Pair (whose internet is a bridge and whose
// routers have a default route).
func TestCloudServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) *Lab
	}{
		{"single", func(t *testing.T) *Lab { return New(t, Options{Kind: NoNAT}) }},
		{"pair", func(t *testing.T) *Lab { return NewPair(t, PairOptions{A: NoNAT, B: PortRestrictedCone}).Lab }},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCloudServer(t, tc.build(t)) })
	}
}

func checkCloudServer(t *testing.T, l *Lab) {
	c := l.AddCloudServer(t)
	listen := func(ap netip.AddrPort) *net.UDPConn {
		t.Helper()
		u, err := l.ListenUDP(c.Host, ap.String())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	prim := listen(netip.AddrPortFrom(c.PrivateIPs[0], 3478))
	alt := listen(netip.AddrPortFrom(c.PrivateIPs[1], 3479))
	closed := listen(netip.AddrPortFrom(c.PrivateIPs[0], 4000))
	client, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	me := netip.AddrPortFrom(l.PublicIP, localPort(client))

	// The closed port first: once the open one's datagram has arrived, the
	// earlier one on the same path would have too.
	send(t, client, netip.AddrPortFrom(c.PublicIPs[0], 4000), "closed")
	send(t, client, netip.AddrPortFrom(c.PublicIPs[0], 3478), "hello")
	if p, from, ok := recv(t, prim, 5*time.Second); !ok || p != "hello" || from != me {
		t.Fatalf("VM got %q from %v (ok %v), want hello from the client's own %v", p, from, ok, me)
	}
	if p, _, ok := recv(t, closed, 100*time.Millisecond); ok {
		t.Errorf("the security group let %q through to port 4000", p)
	}
	send(t, prim, me, "reply")
	send(t, alt, me, "from-alt")
	want := map[string]netip.AddrPort{
		"reply":    netip.AddrPortFrom(c.PublicIPs[0], 3478),
		"from-alt": netip.AddrPortFrom(c.PublicIPs[1], 3479),
	}
	for range want {
		p, from, ok := recv(t, client, 5*time.Second)
		if !ok {
			t.Fatal("the client got nothing from the VM")
		}
		if from != want[p] {
			t.Errorf("%q came from %v, want %v", p, from, want[p])
		}
	}

	ln, err := l.Listen(c.Host, "tcp4", netip.AddrPortFrom(c.PrivateIPs[1], 3479).String())
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Addr, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- conn.RemoteAddr()
			conn.Close()
		}
		close(accepted)
	}()
	conn, err := l.Dial(l.Client, &net.Dialer{Timeout: 5 * time.Second}, "tcp4", netip.AddrPortFrom(c.PublicIPs[1], 3479).String())
	if err != nil {
		t.Fatalf("TCP to %s:3479: %v", c.PublicIPs[1], err)
	}
	if got := <-accepted; got == nil || got.String() != conn.LocalAddr().String() {
		t.Errorf("VM accepted a TCP connection from %v, want the client's %v", got, conn.LocalAddr())
	}
}

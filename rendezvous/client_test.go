package rendezvous_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/rendezvous"
	"github.com/natcheck/natcheck/server"
)

func serve(t *testing.T, on bool) (*server.Server, netip.AddrPort) {
	t.Helper()
	s, _ := testutil.StartServer(t, server.Listen, server.Config{
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Workers: 1, NoTCP: true, Rendezvous: on,
	})
	return s, s.Endpoints()[0]
}

// TestCreateJoinLeave: the whole client API against natcheck serve on
// loopback: blobs exchanged both ways, Leave seen by the other side.
func TestCreateJoinLeave(t *testing.T) {
	srv, ap := serve(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &rendezvous.Client{Server: ap, Poll: 50 * time.Millisecond}
	ticketA := bytes.Repeat([]byte("A"), 700)
	ticketB := bytes.Repeat([]byte("B"), rendezvous.MaxBlob)

	start := time.Now()
	a, err := c.Create(ctx, ticketA)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	// The meeting's cost: the creator's cookie and put (its polls come
	// after); the joiner's cookie and put, whose reply carries the
	// creator's blob.
	if n := a.RoundTrips(); n != 2 {
		t.Errorf("creator: %d round trips in Create, want 2", n)
	}
	code := a.Code()
	if a.Role() != rendezvous.Creator {
		t.Fatal("creator's role")
	}
	got := make(chan []byte, 1)
	go func() {
		b, err := a.Wait(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	start = time.Now()
	b, theirs, err := c.Join(ctx, strings.ToUpper(code), ticketB)
	if err != nil {
		t.Fatal(err)
	}
	joined := time.Since(start)
	if n := b.RoundTrips(); n != 2 {
		t.Errorf("joiner: %d round trips in Join, want 2", n)
	}
	if !bytes.Equal(theirs, ticketA) {
		t.Fatal("joiner got the wrong blob")
	}
	if mine := <-got; !bytes.Equal(mine, ticketB) {
		t.Fatal("creator got the wrong blob")
	}
	met := time.Since(start)
	t.Logf("create %v, join %v, creator has the joiner's blob %v after Join began", created, joined, met)

	// A third peer is refused.
	if _, _, err := c.Join(ctx, code, []byte("third")); !errors.Is(err, rendezvous.ErrTaken) {
		t.Fatalf("third peer: %v", err)
	}
	// Leave on one side ends the other's PeerLeft.
	left := make(chan error, 1)
	go func() { left <- a.PeerLeft(ctx) }()
	start = time.Now()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-left; err != nil {
		t.Fatalf("PeerLeft: %v", err)
	}
	t.Logf("leave seen by the other side after %v", time.Since(start))
	if err := a.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	var m strings.Builder
	srv.WriteMetrics(&m)
	for _, want := range []string{
		"natcheck_serve_rendezvous_codes_active 0",
		"natcheck_serve_rendezvous_blobs_stored_total 2",
		"natcheck_serve_rendezvous_leaves_total 2",
		`natcheck_serve_rendezvous_refused_total{reason="third_peer"} 1`,
		`natcheck_serve_responses_sent_total{transport="udp",kind="rendezvous"}`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Nothing the server sent was more than 4 times what it received.
	tot := srv.UDPTotals()
	if tot.BytesOut > 4*tot.BytesIn {
		t.Errorf("served %d bytes for %d", tot.BytesOut, tot.BytesIn)
	}
}

func TestJoinErrors(t *testing.T) {
	_, ap := serve(t, true)
	ctx := context.Background()
	c := &rendezvous.Client{Server: ap}
	if _, _, err := c.Join(ctx, "k7p2-9xqa-m3tc-f8wd", []byte("x")); !errors.Is(err, rendezvous.ErrUnknownCode) {
		t.Fatalf("unknown code: %v", err)
	}
	if _, _, err := c.Join(ctx, "k7p2-9xqa", []byte("x")); !errors.Is(err, rendezvous.ErrBadCode) {
		t.Fatalf("bad code: %v", err)
	}
	if _, err := c.Create(ctx, make([]byte, rendezvous.MaxBlob+1)); !errors.Is(err, rendezvous.ErrBlobTooLarge) {
		t.Fatalf("large blob: %v", err)
	}
	// The creator leaves before anyone joins: the joiner is told.
	a, err := c.Create(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	a.Leave(ctx)
	if _, _, err := c.Join(ctx, a.Code(), []byte("b")); !errors.Is(err, rendezvous.ErrPeerLeft) {
		t.Fatalf("after the creator left: %v", err)
	}
}

func TestServerWithoutRendezvous(t *testing.T) {
	_, ap := serve(t, false)
	if _, err := rendezvous.Create(context.Background(), ap, []byte("a")); !errors.Is(err, rendezvous.ErrDisabled) {
		t.Fatalf("got %v", err)
	}
}

func TestSilentServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &rendezvous.Client{Server: pc.LocalAddr().(*net.UDPAddr).AddrPort(), RTO: 20 * time.Millisecond, Silence: 300 * time.Millisecond}
	if _, err := c.Create(context.Background(), []byte("a")); !errors.Is(err, rendezvous.ErrNoAnswer) {
		t.Fatalf("got %v", err)
	}
}

// TestLossyPath: a proxy dropping every other datagram each way; the
// exchange still completes (retransmission, idempotent puts).
func TestLossyPath(t *testing.T) {
	_, ap := serve(t, true)
	proxy := lossyProxy(t, ap)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &rendezvous.Client{Server: proxy, RTO: 30 * time.Millisecond, Poll: 30 * time.Millisecond}
	a, err := c.Create(ctx, []byte("creator ticket"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, theirs, err := c.Join(ctx, a.Code(), []byte("joiner ticket"))
	if err != nil || string(theirs) != "creator ticket" {
		t.Fatalf("join: %q %v", theirs, err)
	}
	defer b.Close()
	if mine, err := a.Wait(ctx); err != nil || string(mine) != "joiner ticket" {
		t.Fatalf("wait: %q %v", mine, err)
	}
}

// lossyProxy relays UDP to dst, one client at a time per source, dropping
// every second datagram in each direction.
func lossyProxy(t *testing.T, dst netip.AddrPort) netip.AddrPort {
	front, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	backs := map[netip.AddrPort]*net.UDPConn{}
	go func() {
		buf := make([]byte, 4096)
		n := 0
		for {
			k, src, err := front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			back := backs[src]
			if back == nil {
				back, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
				if err != nil {
					return
				}
				t.Cleanup(func() { back.Close() })
				backs[src] = back
				go func() {
					rb := make([]byte, 4096)
					m := 0
					for {
						k, err := back.Read(rb)
						if err != nil {
							return
						}
						if m++; m%2 == 0 {
							front.WriteToUDPAddrPort(rb[:k], src)
						}
					}
				}()
			}
			if n++; n%2 == 1 {
				back.Write(buf[:k])
			}
		}
	}()
	return front.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestTCPFallback: UDP to the server is silent (a socket that reads
// nothing holds the port), TCP on the same port reaches natcheck serve:
// both sides move to TCP after UDPGrace and meet, leave included, and the
// meeting costs the same round trips as over UDP but the cookie.
func TestTCPFallback(t *testing.T) {
	s, _ := testutil.StartServer(t, server.Listen, server.Config{
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Workers: 1, Rendezvous: true,
	})
	target := s.Endpoints()[0]
	// A port with a silent UDP socket and a TCP listener relaying to the
	// server's TCP endpoint.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	front := ln.Addr().(*net.TCPAddr).AddrPort()
	silent, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(front))
	if err != nil {
		t.Skipf("UDP port %d taken: %v", front.Port(), err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp4", target.String())
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c) }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &rendezvous.Client{Server: front, UDPGrace: 100 * time.Millisecond, RTO: 30 * time.Millisecond, Poll: 30 * time.Millisecond}
	start := time.Now()
	a, err := c.Create(ctx, []byte("creator ticket"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created over %s after %v", a.Transport(), time.Since(start))
	if a.Transport() != "tcp" || a.RoundTrips() != 1 {
		t.Errorf("creator: %s, %d round trips; want tcp, 1 (no cookie over TCP)", a.Transport(), a.RoundTrips())
	}
	b, theirs, err := c.Join(ctx, a.Code(), []byte("joiner ticket"))
	if err != nil || string(theirs) != "creator ticket" {
		t.Fatalf("join: %q %v", theirs, err)
	}
	if b.Transport() != "tcp" {
		t.Errorf("joiner over %s", b.Transport())
	}
	if mine, err := a.Wait(ctx); err != nil || string(mine) != "joiner ticket" {
		t.Fatalf("wait: %q %v", mine, err)
	}
	left := make(chan error, 1)
	go func() { left <- a.PeerLeft(ctx) }()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-left; err != nil {
		t.Fatalf("PeerLeft over TCP: %v", err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// A stream that carries garbage is closed by the server.
	g, err := net.Dial("tcp4", target.String())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, _ = g.Write(append([]byte{0xD7, 'n', 'r', 'v', 9}, make([]byte, 60)...))
	_ = g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := g.Read(make([]byte, 64)); err == nil {
		t.Errorf("the server answered %d bytes to a malformed rendezvous request over TCP", n)
	}
}

package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4/stdnet"
)

// watchedNet is the host's network, with every packet socket watched for
// writes after Close.
type watchedNet struct {
	*stdnet.Net
	mu    sync.Mutex
	conns []*watchedConn
}

func (n *watchedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	c := &watchedConn{PacketConn: pc}
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	return c, nil
}

type watchedConn struct {
	net.PacketConn
	mu               sync.Mutex
	closed           bool
	writes           int
	writesAfterClose int
}

func (c *watchedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	c.writes++
	if c.closed {
		c.writesAfterClose++
	}
	c.mu.Unlock()
	return c.PacketConn.WriteTo(p, addr)
}

func (c *watchedConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.PacketConn.Close()
}

func newWatchedNet(t *testing.T) *watchedNet {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return &watchedNet{Net: n}
}

// TestHairpinCancel cancels the hairpin test while it waits for its own
// mapping from a server that never answers. With a 4 s RTT that wait is
// 5 gaps of 2 s plus 8 s of silence: 18 s. Cancelled, it must end at once;
// the bound checked is half that window, so only a test that ignores the
// cancellation (its reads resetting the deadline the cancel hook set)
// fails, never a slow machine.
func TestHairpinCancel(t *testing.T) {
	first := make(chan struct{})
	var once sync.Once
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{Drop: func(int) bool {
		once.Do(func() { close(first) })
		return true
	}})
	r := &typeRun{cfg: &TypeConfig{Net: newWatchedNet(t), Family: stunclient.IPv4}, rtt: 4 * time.Second, deadline: time.Now().Add(time.Minute)}
	window := r.window()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan nat.TestResult, 1)
	go func() { done <- r.hairpin(ctx, srv.Addr) }()
	<-first // the test is now waiting for the mapping
	cancel()
	select {
	case res := <-done:
		if res.Replied || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("cancelled hairpin test: replied %v, err %v; want no reply and %v", res.Replied, res.Err, context.Canceled)
		}
		if n := srv.Requests(); n > 2 {
			t.Errorf("%d Binding requests sent, want the test to stop sending once cancelled", n)
		}
	case <-time.After(window / 2):
		t.Fatalf("hairpin test still running %v after cancel; it would wait %v", window/2, window)
	}
}

// TestHairpinJoinsSender runs the hairpin test where the "NAT" is
// loopback: the server reports the socket's own address as its mapping, so
// the first datagram from the second socket arrives and the read ends at
// once, while the sender would still have copies to send. The sender must
// have finished before its socket is closed: no write after Close (and no
// race under -race).
func TestHairpinJoinsSender(t *testing.T) {
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	n := newWatchedNet(t)
	r := &typeRun{cfg: &TypeConfig{Net: n, Family: stunclient.IPv4}, rtt: time.Millisecond, deadline: time.Now().Add(time.Minute)}
	start := time.Now()
	res := r.hairpin(context.Background(), srv.Addr)
	if !res.Replied || res.Err != nil {
		t.Fatalf("hairpin over loopback: replied %v from %v, err %v; want a reply", res.Replied, res.From, res.Err)
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), res.To.Port()); res.To != want {
		t.Errorf("mapping %v, want %v", res.To, want)
	}
	// A sender left running would write again within minGap and stop by
	// the end of the read window at the latest; wait that long so it could
	// show itself. (This wait can only let a broken test pass, never fail a
	// correct one.)
	time.Sleep(time.Until(start.Add(silenceCopies*minGap + silenceFloor)))
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.conns) != 2 {
		t.Fatalf("%d sockets opened, want 2", len(n.conns))
	}
	for i, c := range n.conns {
		c.mu.Lock()
		if !c.closed || c.writesAfterClose != 0 {
			t.Errorf("socket %d: closed %v, %d of %d writes after Close", i, c.closed, c.writesAfterClose, c.writes)
		}
		c.mu.Unlock()
	}
}

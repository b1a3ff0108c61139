package stunclient

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/transport/v4/stdnet"
)

// A closed UDP port answers with ICMP port unreachable: on Linux the
// transaction ends at once with ErrRefused (also ErrNoResponse), not after
// its retransmissions; elsewhere it still ends with ErrNoResponse.
func TestClosedPortIsRefused(t *testing.T) {
	// A port nothing listens on: bind one, then close it.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := AddrPortOf(pc.LocalAddr())
	pc.Close()

	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Listen(ctx, n, IPv4, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Do(ctx, Request{To: closed, RTO: 100 * time.Millisecond, Attempts: 3, LastWait: 400 * time.Millisecond})
	took := time.Since(start)
	if !errors.Is(err, ErrNoResponse) {
		t.Fatalf("Do to a closed port: %v, want ErrNoResponse", err)
	}
	if runtime.GOOS != "linux" {
		return
	}
	if !errors.Is(err, ErrRefused) || took > 90*time.Millisecond {
		t.Errorf("Do to a closed port: %v after %v, want ErrRefused before the first retransmission", err, took)
	}
}

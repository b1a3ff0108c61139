package diagnose

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// The gateway check and the STUN question run at once, under their own
// deadlines (--hold extends the check's only), and come back together.
func TestPortmapWithSTUN(t *testing.T) {
	rep := &portmap.Report{}
	var checkLeft, stunLeft time.Duration
	var wait time.Duration
	bothRunning := make(chan struct{})
	res, err := Portmap(context.Background(), PortmapOptions{
		Servers: []stunclient.Server{{Host: "203.0.113.10", Port: 3478}}, Timeout: 2 * time.Second, Hold: 3 * time.Second,
		Check: func(ctx context.Context, o portmap.Options) (*portmap.Report, error) {
			dl, _ := ctx.Deadline()
			checkLeft, wait = time.Until(dl), o.Wait
			<-bothRunning
			return rep, nil
		},
		WhoAmI: func(ctx context.Context, o probe.WhoAmIOptions) (*probe.WhoAmI, error) {
			dl, _ := ctx.Deadline()
			stunLeft = time.Until(dl)
			close(bothRunning)
			return &probe.WhoAmI{Public: netip.MustParseAddrPort("203.0.113.2:40000")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report != rep || res.STUNMapped != netip.MustParseAddr("203.0.113.2") || res.STUNErr != nil || res.Elapsed <= 0 {
		t.Errorf("result %+v", res)
	}
	if checkLeft > 5*time.Second || checkLeft < 4*time.Second || stunLeft > 2*time.Second || stunLeft < time.Second {
		t.Errorf("deadlines %v (check) and %v (STUN) away, want about 5s and 2s", checkLeft, stunLeft)
	}
	if wait != min(portmap.DefaultWait, 2*time.Second) {
		t.Errorf("gateway wait %v", wait)
	}
}

// A failed gateway check cancels the STUN question and waits for it.
func TestPortmapFailureCancelsAndAwaitsSTUN(t *testing.T) {
	var returned atomic.Bool
	var ended atomic.Value
	res, err := Portmap(context.Background(), PortmapOptions{
		Timeout: time.Minute,
		Check:   func(context.Context, portmap.Options) (*portmap.Report, error) { return nil, portmap.ErrNoGateway },
		WhoAmI: func(ctx context.Context, _ probe.WhoAmIOptions) (*probe.WhoAmI, error) {
			defer returned.Store(true)
			<-ctx.Done()
			ended.Store(ctx.Err())
			return nil, ctx.Err()
		},
	})
	if !errors.Is(err, portmap.ErrNoGateway) || res == nil {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if !returned.Load() {
		t.Fatal("Portmap returned while the STUN question was still running")
	}
	if got := ended.Load(); got != context.Canceled {
		t.Errorf("the STUN question ended with %v, want context.Canceled", got)
	}
}

// --no-stun asks no STUN server.
func TestPortmapNoSTUN(t *testing.T) {
	res, err := Portmap(context.Background(), PortmapOptions{
		Timeout: time.Second, NoSTUN: true,
		Check: func(context.Context, portmap.Options) (*portmap.Report, error) { return &portmap.Report{}, nil },
		WhoAmI: func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error) {
			t.Error("asked STUN with NoSTUN")
			return nil, nil
		},
	})
	if err != nil || res.STUNMapped.IsValid() || res.STUNErr != nil {
		t.Errorf("result %+v, err %v", res, err)
	}
}

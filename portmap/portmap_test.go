package portmap

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

func TestCheckFakeGatewayAllProtocols(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", true, true)
	rep, err := Check(context.Background(), Options{Gateway: g.gateway()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("%d results, want 3", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Supported != tri.Yes || r.ExternalIP != g.external || r.MappingAdded != tri.Yes ||
			r.MappingDeleted != tri.Yes || r.Err != nil || r.ExternalPort == 0 {
			t.Errorf("%s: %+v; want supported, external %s, mapping added and deleted", r.Protocol, r, g.external)
		}
	}
	if live := g.live(); len(live) != 0 || g.added != 3 {
		t.Errorf("gateway: %d mappings added, still live %v; want 3 added, none live", g.added, live)
	}
	if got := rep.ExternalIP(); got != g.external {
		t.Errorf("report external %s", got)
	}
}

func TestCheckNATPMPOnlyGateway(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", false, true)
	g.mu.Lock()
	g.noPCP = true
	g.mu.Unlock()
	rep, err := Check(context.Background(), Options{Gateway: g.gateway(), Protocols: []Protocol{NATPMP, PCP}})
	if err != nil {
		t.Fatal(err)
	}
	pmp, _ := rep.Result(NATPMP)
	pcp, _ := rep.Result(PCP)
	if pmp.Supported != tri.Yes || pmp.MappingDeleted != tri.Yes {
		t.Errorf("NAT-PMP: %+v", pmp)
	}
	if pcp.Supported != tri.No || pcp.MappingAdded != tri.Unknown {
		t.Errorf("PCP on a NAT-PMP-only gateway: %+v; want not supported, nothing mapped", pcp)
	}
	if _, ok := rep.Result(UPnP); ok {
		t.Error("UPnP reported although not asked for")
	}
}

// A gateway with nothing listening refuses each protocol (ICMP port
// unreachable), which must be reported as No without waiting.
func TestCheckNothingListeningIsNo(t *testing.T) {
	gw := StaticGateway{Addr: loopbackAddr(), Local: netip.MustParseAddr("127.0.0.1")}
	rep, err := Check(context.Background(), Options{Gateway: gw, Wait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Supported != tri.No || r.MappingAdded != tri.Unknown || r.Err == nil {
			t.Errorf("%s: %+v; want not supported with a reason", r.Protocol, r)
		}
	}
	// Wait is a minute: finishing at all within the test proves that a
	// refusal ends the wait.
}

// Cancelling the context while the mappings exist still deletes them.
func TestCheckCancelDeletesMappings(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", true, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Report)
	go func() {
		rep, _ := Check(ctx, Options{Gateway: g.gateway(), Hold: time.Minute})
		done <- rep
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(g.live()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("mappings never appeared: %v", g.live())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	rep := <-done
	if live := g.live(); len(live) != 0 {
		t.Errorf("still live after cancel: %v", live)
	}
	for _, r := range rep.Results {
		// The gateway may have made the mapping while its answer was still
		// on the way when cancel came: then "added" is unknown, but the
		// deletion must still have been confirmed.
		if r.MappingAdded == tri.No || r.MappingDeleted != tri.Yes {
			t.Errorf("%s: added %v deleted %v, want deleted yes", r.Protocol, r.MappingAdded, r.MappingDeleted)
		}
	}
}

func TestCheckNoGateway(t *testing.T) {
	_, err := Check(context.Background(), Options{Gateway: SystemGateway{RouteFile: "testdata/route-nodefault"}})
	if !errors.Is(err, ErrNoGateway) {
		t.Fatalf("err %v, want ErrNoGateway", err)
	}
}

// A gateway behind a carrier NAT (like miniupnpd on a 100.64.0.0/10 WAN
// address) answers every protocol but maps nothing; PCP's error response
// still names its external address, which proves the double NAT.
func TestCheckGatewayWithPrivateWAN(t *testing.T) {
	g := newFakeGateway(t, "100.64.0.2", true, true)
	g.mu.Lock()
	g.private = true
	g.mu.Unlock()
	rep, err := Check(context.Background(), Options{Gateway: g.gateway()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Supported != tri.Yes || r.MappingAdded != tri.No || r.MappingDeleted != tri.Unknown || r.Err == nil {
			t.Errorf("%s: %+v; want supported, mapping refused with a reason", r.Protocol, r)
		}
	}
	if got := rep.ExternalIP(); got != g.external {
		t.Fatalf("external %s, want %s from PCP", got, g.external)
	}
	if v, _ := DoubleNAT(rep.ExternalIP(), netip.MustParseAddr("203.0.113.2")); v != tri.Yes {
		t.Errorf("double NAT %v, want yes", v)
	}
	if len(g.live()) != 0 {
		t.Errorf("live mappings %v", g.live())
	}
}

package stunclient_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func server(t *testing.T, s string) stunclient.Server {
	t.Helper()
	srv, err := stunclient.ParseServer(s)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestResolveCauses(t *testing.T) {
	r := stuntest.DNSResolver(t, map[string][]netip.Addr{
		"v4.test":   {netip.MustParseAddr("192.0.2.1")},
		"v6.test":   {netip.MustParseAddr("2001:db8::1")},
		"both.test": {netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")},
	})
	ctx := context.Background()
	cases := []struct {
		host string
		f    stunclient.Family
		want string // address, or the error's text
		kind error
	}{
		{"v4.test", stunclient.IPv4, "192.0.2.1:3478", nil},
		{"both.test", stunclient.IPv6, "[2001:db8::2]:3478", nil},
		{"v6.test", stunclient.IPv4, "v6.test: no IPv4 address (it has IPv6 addresses only)", stunclient.ErrNoAddress},
		{"v4.test", stunclient.IPv6, "v4.test: no IPv6 address (it has IPv4 addresses only)", stunclient.ErrNoAddress},
		{"nothere.test", stunclient.IPv4, "nothere.test: no such host (DNS says the name does not exist)", stunclient.ErrNoSuchHost},
		{"192.0.2.9", stunclient.IPv4, "192.0.2.9:3478", nil}, // no query: the responder does not know it
	}
	for _, c := range cases {
		addrs, err := server(t, c.host).Resolve(ctx, r, c.f)
		if c.kind == nil {
			if err != nil || len(addrs) == 0 || addrs[0].String() != c.want {
				t.Errorf("%s over %s: %v, %v; want %s", c.host, c.f, addrs, err, c.want)
			}
			continue
		}
		var re *stunclient.ResolveError
		if !errors.Is(err, c.kind) || !errors.As(err, &re) || err.Error() != c.want {
			t.Errorf("%s over %s: %v; want %q (%v)", c.host, c.f, err, c.want, c.kind)
		}
	}
}

// TestResolveHangingBounded: a resolver that never answers costs the
// lookup's own deadline (half the time left), and the error says DNS timed
// out, not that a context's deadline passed.
func TestResolveHangingBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := server(t, "stun.hangs.test").Resolve(ctx, stuntest.SilentResolver(t), stunclient.IPv4)
	took := time.Since(start)
	if !errors.Is(err, stunclient.ErrDNSTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want ErrDNSTimeout only", err)
	}
	if !strings.Contains(err.Error(), "DNS gave no answer within") {
		t.Errorf("err = %q", err)
	}
	if took < 150*time.Millisecond || took > 350*time.Millisecond {
		t.Errorf("took %v; want about 200ms (half of the 400ms left)", took)
	}
	// Cancelled (Ctrl-C, or a task given up): ctx's error, no cause.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := server(t, "stun.hangs.test").Resolve(ctx, stuntest.SilentResolver(t), stunclient.IPv4); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestAllUnresolved(t *testing.T) {
	timeout := &stunclient.ResolveError{Host: "a.test", Kind: stunclient.ErrDNSTimeout, Timeout: time.Second}
	nx := &stunclient.ResolveError{Host: "b.test", Kind: stunclient.ErrNoSuchHost}
	err := stunclient.AllUnresolved([]error{timeout, nx})
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Fatalf("%v does not match ErrNoAnswer", err)
	}
	want := "DNS could not resolve any server name: is this host offline? (a.test: DNS gave no answer within 1s; b.test: no such host (DNS says the name does not exist))"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
	if err := stunclient.AllUnresolved([]error{nx}); strings.Contains(err.Error(), "offline") {
		t.Errorf("a wrong name is no sign of being offline: %q", err)
	}
	if stunclient.AllUnresolved([]error{nx, nil}) != nil || stunclient.AllUnresolved(nil) != nil {
		t.Error("a resolved server (or none) is not all unresolved")
	}
}

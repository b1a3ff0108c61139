package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/server"
)

// TestSmoke runs the load generator briefly against an in-process natcheck
// server: a smoke test of the benchmark, not a measurement.
func TestSmoke(t *testing.T) {
	s, stop := testutil.StartServer(t, server.Listen, server.Config{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, NoTCP: true})
	r, err := run(s.Endpoints()[0], 4, 2, 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.answered == 0 || r.rate <= 0 {
		t.Errorf("result %+v", r)
	}
	// The server counts a reply once sendmmsg has returned, so a reply the
	// generator already read may not be counted yet while Serve runs: read
	// the counters after Serve has returned (its workers are done then).
	stop()
	if got := s.UDPTotals().Replies["success"]; got < r.answered {
		t.Errorf("server sent %d answers, generator counted %d", got, r.answered)
	}
}

func TestBenchTarget(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", true},
		{"::1", true},
		{"198.18.0.1", true},
		{"198.19.255.254", true},
		{"::ffff:198.18.0.2", true},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"192.0.2.1", false},
		{"8.8.8.8", false},
		{"2001:db8::1", false},
	} {
		if got := benchTarget(netip.MustParseAddr(c.addr)); got != c.ok {
			t.Errorf("benchTarget(%s) = %v, want %v", c.addr, got, c.ok)
		}
	}
}

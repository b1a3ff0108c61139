package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/natcheck/natcheck/server"
)

// TestSmoke runs the load generator briefly against an in-process natcheck
// server: a smoke test of the benchmark, not a measurement.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Listen(ctx, server.Config{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	r, err := run(s.Endpoints()[0], 4, 2, 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.answered == 0 || r.rate <= 0 {
		t.Errorf("result %+v", r)
	}
	if got := s.UDPTotals().Replies["success"]; got < r.answered {
		t.Errorf("server sent %d answers, generator counted %d", got, r.answered)
	}
}

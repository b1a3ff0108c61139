// Package testutil holds helpers shared by natcheck's tests (and the lab):
// a goroutine-safe buffer and the one way tests start and stop an
// in-process server.
package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a child's
// stdout and stderr, a server's logger) and a reading test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Server is what StartServer runs (server.Server). The package does not
// import server, so server's own tests can use it too.
type Server interface {
	Serve(ctx context.Context) error
}

// StartServer binds a server with listen(ctx, cfg) (server.Listen) and
// serves it in the background. stop cancels it, waits until Serve has
// returned (so its counters are final) and fails t if Serve returned an
// error; it runs at cleanup unless the test called it first, and is safe
// to call again. A loopback address this host lacks (127.0.0.2 on macOS)
// skips the test; any other bind error fails it.
func StartServer[S Server, C any](t testing.TB, listen func(context.Context, C) (S, error), cfg C) (s S, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := listen(ctx, cfg)
	if err != nil {
		cancel()
		SkipIfNotLocal(t, err)
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// SkipIfNotLocal skips the test when err says an address is not one of
// this host's: the tests use 127.0.0.1 and 127.0.0.2, and macOS has only
// the first until `sudo ifconfig lo0 alias 127.0.0.2 up`.
func SkipIfNotLocal(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("a loopback address this host lacks (on macOS: sudo ifconfig lo0 alias 127.0.0.2 up): %v", err)
	}
}

// InstantClock is an every.Clock whose waits return at once and move its
// time on, so a schedule runs without sleeping; Advance stands for the
// time a run takes.
type InstantClock struct{ now time.Time }

// NewInstantClock starts an InstantClock at t.
func NewInstantClock(t time.Time) *InstantClock { return &InstantClock{now: t} }

// Now is the clock's time.
func (c *InstantClock) Now() time.Time { return c.now }

// After moves the clock on by d and returns a channel that already holds
// the new time.
func (c *InstantClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// Advance moves the clock on by d.
func (c *InstantClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// RequireTool returns the path of an external program a test needs. Where
// it is missing the test skips, or fails with NATCHECK_LAB=1, which CI sets
// after installing every such program (.ci/run); pkg names the Debian
// package that ships it.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatalf("%s (Debian package %s) not installed, and NATCHECK_LAB=1 requires it", name, pkg)
		}
		t.Skipf("%s (Debian package %s) not installed; NATCHECK_LAB=1 makes this a failure", name, pkg)
	}
	return path
}

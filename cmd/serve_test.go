package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
)

func TestServeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve"}, "needs --listen"},
		{[]string{"serve", "--listen", "nope"}, "not an IP address"},
		{[]string{"serve", "--listen", "127.0.0.1", "--listen", "127.0.0.1"}, "alternate address equals the primary"},
		{[]string{"serve", "--listen", "127.0.0.1", "--port", "3478", "--alt-port", "3478"}, "alternate port equals"},
		{[]string{"serve", "--listen", "127.0.0.1", "--port", "70000"}, "not a port"},
		{[]string{"serve", "--listen", "0.0.0.0"}, "specific address"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rate-limit", "-1"}, "negative"},
		{[]string{"serve", "extra"}, "unknown command"},
		{[]string{"serve", "--listen", "224.0.0.1"}, "not a unicast address"},
		{[]string{"serve", "--listen", "255.255.255.255"}, "not a unicast address"},
		{[]string{"serve", "--listen", "ff02::1"}, "not a unicast address"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rate-limit", "NaN"}, "not a number"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rate-limit", "+Inf"}, "not a number"},
		{[]string{"serve", "--listen", "127.0.0.1", "--batch", "0"}, "--batch must be at least 1"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rendezvous", "--rendezvous-ttl", "10m"}, "--rendezvous-ttl 10m0s is out of range"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rendezvous", "--rendezvous-ttl", "0s"}, "--rendezvous-ttl"},
		{[]string{"serve", "--listen", "127.0.0.1", "--rendezvous-max-codes", "0"}, "--rendezvous-max-codes must be at least 1"},
		{[]string{"serve", "--listen", "127.0.0.1", "--listen", "127.0.0.2", "--advertise", "203.0.113.20"}, "2 --listen but 1 --advertise: give one --advertise per --listen"},
		{[]string{"serve", "--listen", "127.0.0.1", "--advertise", "public"}, `--advertise "public" is not an IP address`},
		{[]string{"serve", "--listen", "127.0.0.1", "--advertise", "2001:db8::20"}, "cannot advertise 2001:db8::20 for 127.0.0.1: not the same address family"},
		{[]string{"serve", "--listen", "127.0.0.1", "--advertise", "0.0.0.0"}, "cannot advertise 0.0.0.0: not a unicast address"},
		{[]string{"serve", "--listen", "127.0.0.1", "--advertise", "224.0.0.1"}, "not a unicast address"},
		{[]string{"serve", "--listen", "127.0.0.1", "--listen", "127.0.0.2", "--advertise", "203.0.113.20", "--advertise", "203.0.113.20"}, "both advertised as 203.0.113.20"},
	} {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), tc.args, testDeps(&out, &errOut, nil))
		if code != ExitUsage || !strings.Contains(errOut.String(), tc.msg) || strings.Count(errOut.String(), "\n") != 1 || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errOut.String())
		}
	}
}

func TestServeBindFailure(t *testing.T) {
	var errOut bytes.Buffer
	code := Execute(context.Background(), []string{"serve", "--listen", "192.0.2.1"}, testDeps(&bytes.Buffer{}, &errOut, nil))
	if code != ExitFailure || !strings.Contains(errOut.String(), "address not assigned") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestServeRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	var errOut testutil.SyncBuffer // the server logs while the test reads
	done := make(chan int, 1)
	go func() {
		// Ports 40000+ are unlikely to be taken on a test machine's loopback.
		done <- Execute(ctx, []string{"serve", "--listen", "127.0.0.1", "--port", "41478", "--alt-port", "41479", "--metrics", "127.0.0.1:0"}, testDeps(&out, &errOut, nil))
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(errOut.String(), "serving STUN"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %q", errOut.String())
		}
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("exit %d after cancel, stderr %q", code, errOut.String())
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "shutting down") || !strings.Contains(errOut.String(), "metrics on http://127.0.0.1:") {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

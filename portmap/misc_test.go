package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

func TestParseRouteTable(t *testing.T) {
	const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
		"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"tun0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0\n" + // no gateway: skipped
		"garbage line\n"
	gw, err := parseRouteTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if gw.Addr != netip.MustParseAddr("192.168.1.1") || gw.Iface != "eth0" {
		t.Errorf("got %+v, want 192.168.1.1 on eth0 (lowest metric)", gw)
	}
}

func TestDoubleNAT(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		gw, stun string
		want     tri.Bool
	}{
		{"100.64.0.2", "203.0.113.2", tri.Yes},    // carrier NAT (RFC 6598)
		{"100.127.255.1", "", tri.Yes},            // still 100.64.0.0/10
		{"100.128.0.1", "100.128.0.1", tri.No},    // just outside it
		{"192.168.0.2", "198.51.100.1", tri.Yes},  // private
		{"198.51.100.1", "198.51.100.9", tri.Yes}, // public, but not what STUN saw
		{"198.51.100.1", "198.51.100.1", tri.No},
		{"198.51.100.1", "", tri.Unknown},
		{"", "198.51.100.1", tri.Unknown},
		{"0.0.0.0", "198.51.100.1", tri.Unknown},
	} {
		var gw, stun netip.Addr
		if tc.gw != "" {
			gw = a(tc.gw)
		}
		if tc.stun != "" {
			stun = a(tc.stun)
		}
		if got, why := DoubleNAT(gw, stun); got != tc.want || why == "" {
			t.Errorf("DoubleNAT(%s, %s) = %v (%q), want %v", tc.gw, tc.stun, got, why, tc.want)
		}
	}
}

// Several failures of one protocol read as one line, and each still
// matches errors.Is.
func TestFailJoinsErrors(t *testing.T) {
	c := &checker{res: &Result{}}
	c.fail(nil)
	if c.res.Err != nil {
		t.Fatalf("nil failure recorded: %v", c.res.Err)
	}
	c.fail(fmt.Errorf("external address: %w", ErrRefused))
	c.fail(errNoAnswer{wait: time.Second, tries: 3})
	want := "external address: " + ErrRefused.Error() + "; no answer in 1s (3 transmissions)"
	if c.res.Err.Error() != want {
		t.Errorf("text %q, want %q", c.res.Err, want)
	}
	if !errors.Is(c.res.Err, ErrRefused) || !errors.Is(c.res.Err, ErrNoAnswer) {
		t.Errorf("errors.Is lost a cause: %v", c.res.Err)
	}
}

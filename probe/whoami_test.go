package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func run(t *testing.T, timeout time.Duration, addrs ...netip.AddrPort) (*WhoAmI, error) {
	t.Helper()
	var servers []stunclient.Server
	for _, a := range addrs {
		servers = append(servers, stuntest.ServerAt(t, a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return RunWhoAmI(ctx, WhoAmIOptions{Servers: servers})
}

func TestWhoAmIOnLoopbackIsNotNAT(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	b := stuntest.Start(t, "127.0.0.2", stuntest.Behaviour{})
	w, err := run(t, 3*time.Second, a.Addr, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Public.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("public = %s, want 127.0.0.1:*", w.Public)
	}
	if w.NAT {
		t.Error("a loopback mapping is the host's own address: nat must be false")
	}
	if w.Local.Addr() != netip.MustParseAddr("127.0.0.1") || w.Local.Port() != w.Public.Port() {
		t.Errorf("local = %s, want 127.0.0.1:%d (route source, socket port)", w.Local, w.Public.Port())
	}
	// Both may confirm, or the slower one may be skipped after the grace
	// period on a loaded machine; neither may disagree.
	if w.Agreed < 1 || w.Differ != 0 {
		t.Errorf("agreed/differ = %d/%d, want at least 1/0", w.Agreed, w.Differ)
	}
	for _, r := range w.Servers {
		if r.Status != StatusAnswered && r.Status != StatusSkipped {
			t.Errorf("server %s: status %s", r.Server, r.Status)
		}
	}
}

func TestWhoAmIReportsNATWhenMappingIsForeign(t *testing.T) {
	public := netip.MustParseAddrPort("203.0.113.7:40000")
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{Mapped: func(netip.AddrPort) netip.AddrPort { return public }})
	w, err := run(t, 3*time.Second, a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Public != public || !w.NAT {
		t.Errorf("public=%s nat=%v, want %s nat=true", w.Public, w.NAT, public)
	}
}

// A dead server beside a live one must not hold the answer until timeout:
// the run ends a grace period after the live answer.
func TestWhoAmIDeadServerCostsNoTimeout(t *testing.T) {
	live := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	dead := stuntest.Dead(t, "127.0.0.2")
	w, err := run(t, 10*time.Second, dead, live.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Elapsed >= 2*time.Second {
		t.Errorf("took %v with a dead server; the dead one must only cost the grace period", w.Elapsed)
	}
	if got := w.Servers[0].Status; got != StatusSkipped && got != StatusNoAnswer {
		t.Errorf("dead server status = %s", got)
	}
	if w.Servers[1].Status != StatusAnswered {
		t.Errorf("live server status = %s, want answered", w.Servers[1].Status)
	}
}

func TestWhoAmISlowServerIsSkippedOnceTwoAgree(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	b := stuntest.Start(t, "127.0.0.2", stuntest.Behaviour{})
	slow := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{Delay: 5 * time.Second})
	w, err := run(t, 10*time.Second, slow.Addr, a.Addr, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Servers[0].Status != StatusSkipped {
		t.Errorf("slow server status = %s, want skipped", w.Servers[0].Status)
	}
	if w.Elapsed >= 5*time.Second {
		t.Errorf("waited %v for the slow server", w.Elapsed)
	}
}

func TestWhoAmIIgnoresGarbageWrongTxAndSpoofs(t *testing.T) {
	liar := netip.MustParseAddrPort("198.51.100.66:1")
	tests := map[string]stuntest.Behaviour{
		"garbage":  {Garbage: true},
		"wrong-tx": {WrongTx: true, Mapped: func(netip.AddrPort) netip.AddrPort { return liar }},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			s := stuntest.Start(t, "127.0.0.1", b)
			w, err := run(t, 3*time.Second, s.Addr)
			if name == "wrong-tx" {
				// The real reply carries the same lie; what matters is that the
				// wrong-ID datagram was counted as ignored, not taken.
				if err != nil || w.Ignored < 1 {
					t.Fatalf("err=%v ignored=%d, want the wrong-ID reply ignored", err, w.Ignored)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Ignored < 1 || w.Public.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("ignored=%d public=%s", w.Ignored, w.Public)
			}
		})
	}
	t.Run("spoofed-source", func(t *testing.T) {
		s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{SpoofFrom: "127.0.0.2"})
		w, err := run(t, 1200*time.Millisecond, s.Addr)
		if !errors.Is(err, stunclient.ErrNoAnswer) {
			t.Fatalf("err = %v, want ErrNoAnswer: replies from another address must be ignored", err)
		}
		if w.Ignored < 1 {
			t.Errorf("ignored = %d, want the spoofed replies counted", w.Ignored)
		}
	})
}

func TestWhoAmIRetransmitsAfterDrop(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{Drop: func(n int) bool { return n <= 2 }})
	w, err := run(t, 5*time.Second, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests() != 3 {
		t.Errorf("server saw %d requests, want 3 (two dropped, one answered)", s.Requests())
	}
	if w.Servers[0].Status != StatusAnswered {
		t.Errorf("status %s", w.Servers[0].Status)
	}
}

func TestWhoAmITimesOutWithNoAnswer(t *testing.T) {
	dead1, dead2 := stuntest.Dead(t, "127.0.0.1"), stuntest.Dead(t, "127.0.0.2")
	start := time.Now()
	_, err := run(t, 600*time.Millisecond, dead1, dead2)
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("returned after %v, the timeout was 600ms", el)
	}
}

func TestWhoAmICancelStopsAtOnce(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: []stunclient.Server{stuntest.ServerAt(t, dead)}})
	if err == nil {
		t.Fatal("want an error after cancellation")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("cancel took %v to take effect", el)
	}
}

func TestWhoAmIDisagreementPicksMajority(t *testing.T) {
	lie := netip.MustParseAddrPort("198.51.100.9:9")
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	b := stuntest.Start(t, "127.0.0.2", stuntest.Behaviour{})
	liar := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{Mapped: func(netip.AddrPort) netip.AddrPort { return lie }})
	w, err := run(t, 3*time.Second, liar.Addr, a.Addr, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Public.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("public %s, want the majority 127.0.0.1", w.Public)
	}
	if w.Agreed != 2 {
		t.Errorf("agreed = %d, want 2", w.Agreed)
	}
}

func TestWhoAmIReplyWithoutAddressIsAnError(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{NoMapped: true})
	w, err := run(t, 2*time.Second, s.Addr)
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	if w.Servers[0].Status != StatusBadReply {
		t.Errorf("status %s, want %s", w.Servers[0].Status, StatusBadReply)
	}
}

// A server with no address of the family fails without any DNS query.
func TestWhoAmIServerWithoutAddressOfFamily(t *testing.T) {
	s, err := stunclient.ParseServer("[::1]:" + strconv.Itoa(stunclient.DefaultPort))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: []stunclient.Server{s}, Family: stunclient.IPv4})
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Fatalf("err = %v, want ErrNoAnswer", err)
	}
	if w.Servers[0].Status != StatusUnresolved {
		t.Errorf("status %s, want %s", w.Servers[0].Status, StatusUnresolved)
	}
}

func TestWhoAmIIPv6(t *testing.T) {
	s := startOrSkip6(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	w, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: []stunclient.Server{stuntest.ServerAt(t, s)}, Family: stunclient.IPv6})
	if err != nil {
		t.Fatal(err)
	}
	if w.Public.Addr() != netip.IPv6Loopback() || w.NAT || w.Local.Addr() != netip.IPv6Loopback() {
		t.Errorf("public %s local %s nat %v; want [::1] on both sides and no NAT", w.Public, w.Local, w.NAT)
	}
}

// startOrSkip6 starts a test server on [::1], or skips where the host has
// no IPv6 loopback.
func startOrSkip6(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	return stuntest.Serve(t, c, stuntest.Behaviour{}).Addr
}

// Two names of one server are one witness, not two agreeing servers.
func TestWhoAmISameServerTwiceIsOneVote(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	w, err := run(t, 2*time.Second, s.Addr, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if w.Agreed != 1 {
		t.Errorf("agreed = %d, want 1: one server cannot confirm itself", w.Agreed)
	}
}

// With Bind the socket is on that address and port, and Local says so.
func TestWhoAmIBind(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	bind := stunclient.AddrPortOf(c.LocalAddr())
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	w, err := RunWhoAmI(ctx, WhoAmIOptions{Servers: []stunclient.Server{stuntest.ServerAt(t, a.Addr)}, Bind: bind})
	if err != nil {
		t.Fatal(err)
	}
	if w.Local != bind || w.Public != bind {
		t.Errorf("local %v, public %v; want both %v", w.Local, w.Public, bind)
	}
}

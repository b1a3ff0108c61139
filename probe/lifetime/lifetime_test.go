package lifetime

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
)

// rpServer is a loopback STUN server that understands RESPONSE-PORT. It
// plays the NAT too: with lifetime set, it drops answers to a port that has
// not sent anything for longer than lifetime, as a NAT drops packets to an
// expired mapping.
type rpServer struct {
	addr     netip.AddrPort
	mode     string        // "honour", "ignore" or "refuse"
	lifetime time.Duration // 0: mappings never expire

	// renumber makes the simulated NAT give each mapping its own public
	// port, and a new one when an expired mapping is made again.
	renumber bool

	mu   sync.Mutex
	seen map[uint16]time.Time // last packet from each client port
	ext  map[uint16]uint16    // renumber: client port -> public port
	next uint16
}

func startRPServer(t *testing.T, mode string, lifetime time.Duration) *rpServer {
	t.Helper()
	return startRP(t, &rpServer{mode: mode, lifetime: lifetime})
}

// startRP starts s, configured but not yet running.
func startRP(t *testing.T, s *rpServer) *rpServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	s.seen, s.ext, s.next = map[uint16]time.Time{}, map[uint16]uint16{}, 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(c)
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return s
}

func (s *rpServer) serve(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		now := time.Now()
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		mapped := s.touch(from, now)
		to := from
		setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: mapped.Addr().AsSlice(), Port: int(mapped.Port())}}
		if v, err := req.Get(stun.AttrResponsePort); err == nil && len(v) >= 2 {
			switch s.mode {
			case "refuse":
				setters = []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingError,
					&stun.UnknownAttributes{stun.AttrResponsePort}, stun.ErrorCodeAttribute{Code: 420}}
			case "honour":
				to = netip.AddrPortFrom(from.Addr(), uint16(v[0])<<8|uint16(v[1]))
			}
		}
		if s.expired(to.Port(), now) {
			continue
		}
		m, err := stun.Build(append(setters, stun.Fingerprint)...)
		if err == nil {
			c.WriteToUDPAddrPort(m.Raw, to)
		}
	}
}

// touch records a packet from a client port and returns the mapping the
// simulated NAT gives it.
func (s *rpServer) touch(from netip.AddrPort, now time.Time) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.seen[from.Port()]
	s.seen[from.Port()] = now
	if !s.renumber {
		return from
	}
	if !ok || (s.lifetime > 0 && now.Sub(last) > s.lifetime) {
		s.next++
		s.ext[from.Port()] = s.next
	}
	return netip.AddrPortFrom(from.Addr(), s.ext[from.Port()])
}

func (s *rpServer) expired(port uint16, now time.Time) bool {
	if s.lifetime == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.seen[port]
	return !ok || now.Sub(last) > s.lifetime
}

func measure(t *testing.T, o Options, addrs ...netip.AddrPort) (*Result, error) {
	t.Helper()
	for _, a := range addrs {
		o.Servers = append(o.Servers, stuntest.ServerAt(t, a))
	}
	if o.OwnAddr == nil {
		// The test servers simulate a NAT on loopback: 127.0.0.1 is not
		// this host's own address here.
		o.OwnAddr = func(netip.Addr) bool { return false }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Measure(ctx, o)
}

// The simulated NAT forgets a mapping after 600 ms; the measurement's
// bounds must enclose that, and the round must stop soon after it rather
// than run to Max.
func TestLifetimeBoundsEncloseTheTimeout(t *testing.T) {
	const lifetime = 600 * time.Millisecond
	s := startRPServer(t, "honour", lifetime)
	l, err := measure(t, Options{Min: 100 * time.Millisecond, Max: 5 * time.Second, Sockets: 24}, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %s [%v, %v], contradictions %d, elapsed %v", l.Result, l.Lower, l.Upper, l.Contradictions, l.Elapsed)
	if l.Result != Measured || l.Method != MethodResponsePort || l.Server != s.addr {
		t.Fatalf("result %q method %q server %s; want measured with %s", l.Result, l.Method, l.Server, s.addr)
	}
	// Scheduling on a loaded machine (-race, shared cores) shifts each side;
	// the bounds must still bracket the simulated timeout.
	const slack = 250 * time.Millisecond
	if l.Lower > lifetime+slack || l.Upper < lifetime-slack || l.Lower >= l.Upper {
		t.Errorf("bounds [%v, %v] do not enclose %v", l.Lower, l.Upper, lifetime)
	}
	if l.Upper > 2*lifetime+slack {
		t.Errorf("upper bound %v is too loose for a geometric grid of 24 over [100ms, 5s]", l.Upper)
	}
	skipped := 0
	for _, p := range l.Probes {
		if p.State == ProbeSkipped {
			skipped++
		}
		if p.State == ProbeAlive && p.Idle < p.Target/2 {
			t.Errorf("probe aimed at %v tested only %v of idleness", p.Target, p.Idle)
		}
	}
	if skipped == 0 || l.Elapsed > 4*time.Second {
		t.Errorf("%d probes skipped, elapsed %v: the round should end soon after two expiries", skipped, l.Elapsed)
	}
}

func TestLifetimeSecondRoundNarrowsTheBounds(t *testing.T) {
	const lifetime = 400 * time.Millisecond
	s := startRPServer(t, "honour", lifetime)
	l, err := measure(t, Options{Min: 100 * time.Millisecond, Max: 3 * time.Second, Sockets: 8, Rounds: 2}, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Rounds != 2 || l.Result != Measured {
		t.Fatalf("rounds %d result %s; want 2 rounds, measured", l.Rounds, l.Result)
	}
	var first []Probe
	for _, p := range l.Probes {
		if p.Round == 1 {
			first = append(first, p)
		}
	}
	one := &Result{Probes: first}
	summarise(one)
	t.Logf("round 1 [%v, %v], after round 2 [%v, %v]", one.Lower, one.Upper, l.Lower, l.Upper)
	if l.Upper-l.Lower > one.Upper-one.Lower {
		t.Errorf("round 2 widened the bounds: %v -> %v", one.Upper-one.Lower, l.Upper-l.Lower)
	}
}

func TestLifetimeLongerThanMax(t *testing.T) {
	s := startRPServer(t, "honour", 0)
	l, err := measure(t, Options{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond, Sockets: 4}, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Result != LongerThanMax || l.Upper != 0 || l.Lower < 250*time.Millisecond {
		t.Errorf("result %s [%v, %v]; want longer-than-max with lower near 300ms", l.Result, l.Lower, l.Upper)
	}
	if l.Estimate() != 0 {
		t.Errorf("estimate %v without an upper bound", l.Estimate())
	}
}

func TestLifetimeNeedsResponsePort(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want RPSupport
		code int
	}{
		{"ignore", RPIgnored, 0},
		{"refuse", RPRefused, 420},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := startRPServer(t, tc.mode, 0)
			l, err := measure(t, Options{Max: time.Second}, s.addr)
			if err != nil {
				t.Fatal(err)
			}
			if l.Result != Unknown || l.Reason == "" || len(l.Probes) != 0 {
				t.Errorf("result %q reason %q probes %d; want unknown, a reason, no probes", l.Result, l.Reason, len(l.Probes))
			}
			if got := l.Servers[0]; got.Support != tc.want || got.ErrorCode != tc.code {
				t.Errorf("support %q code %d, want %q %d", got.Support, got.ErrorCode, tc.want, tc.code)
			}
		})
	}
}

// Without RESPONSE-PORT, a NAT that changes ports still shows expiry: the
// idle socket's next request gets a new public port.
func TestLifetimeByPortChange(t *testing.T) {
	const lifetime = 500 * time.Millisecond
	s := startRP(t, &rpServer{mode: "ignore", lifetime: lifetime, renumber: true})
	l, err := measure(t, Options{Min: 100 * time.Millisecond, Max: 3 * time.Second, Sockets: 20}, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %s [%v, %v] by %s", l.Result, l.Lower, l.Upper, l.Method)
	if l.Method != MethodPortChange || l.Result != Measured || l.Servers[0].Support != RPIgnored {
		t.Fatalf("method %s result %s support %s; want the port-change fallback, measured", l.Method, l.Result, l.Servers[0].Support)
	}
	const slack = 250 * time.Millisecond
	if l.Lower > lifetime+slack || l.Upper < lifetime-slack || l.Lower >= l.Upper {
		t.Errorf("bounds [%v, %v] do not enclose %v", l.Lower, l.Upper, lifetime)
	}
}

// A plain server first in the list, a capable one second: the second is
// used, and the first is reported as ignoring RESPONSE-PORT.
func TestLifetimePicksACapableServer(t *testing.T) {
	plain := stuntest.Start(t, "127.0.0.2", stuntest.Behaviour{})
	good := startRPServer(t, "honour", 0)
	l, err := measure(t, Options{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond, Sockets: 2}, plain.Addr, good.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Server != good.addr || l.Servers[0].Support != RPIgnored || l.Servers[1].Support != RPSupported {
		t.Errorf("server %s, supports %q/%q", l.Server, l.Servers[0].Support, l.Servers[1].Support)
	}
}

// A dead server first in the list is given up a grace period after the
// capable second one answered, not waited for until the run's time limit
// (which would leave the measurement unknown).
func TestLifetimeDeadFirstServerCostsAGrace(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.2")
	good := startRPServer(t, "honour", 0)
	l, err := measure(t, Options{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond, Sockets: 2}, dead, good.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Server != good.addr || l.Result != LongerThanMax && l.Result != Measured {
		t.Errorf("server %s result %s (%s); want %s used", l.Server, l.Result, l.Reason, good.addr)
	}
	got := l.Servers[0]
	if got.Support != RPNoAnswer || got.Err == nil || !strings.Contains(got.Err.Error(), "grace") {
		t.Errorf("dead server: support %q err %v; want no answer within the grace period", got.Support, got.Err)
	}
}

func TestLifetimeNoAnswer(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Measure(ctx, Options{Servers: []stunclient.Server{stuntest.ServerAt(t, dead)}})
	if !errors.Is(err, stunclient.ErrNoAnswer) {
		t.Errorf("err = %v, want ErrNoAnswer", err)
	}
}

func TestLifetimeOptionsRejectNonsense(t *testing.T) {
	s := stunclient.Server{Host: "127.0.0.1", Port: 3478}
	for _, o := range []Options{
		{},
		{Servers: []stunclient.Server{s}, Min: time.Minute, Max: time.Second},
		{Servers: []stunclient.Server{s}, Sockets: 1},
		{Servers: []stunclient.Server{s}, Sockets: maxSockets + 1},
	} {
		if _, err := Measure(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestLifetimeGrids(t *testing.T) {
	g := geometric(time.Second, 64*time.Second, 7)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64}
	for i := range want {
		if d := g[i] - want[i]*time.Second; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("geometric[%d] = %v, want %vs", i, g[i], want[i])
		}
	}
	l := linear(10*time.Second, 20*time.Second, 4)
	if len(l) != 4 || l[0] != 12*time.Second || l[3] != 18*time.Second {
		t.Errorf("linear = %v", l)
	}
	if linear(time.Second, time.Second+time.Millisecond, 8) != nil {
		t.Error("linear below millisecond resolution should give up")
	}
}

func TestSummariseCountsContradictions(t *testing.T) {
	s := time.Second
	l := &Result{Probes: []Probe{
		{Idle: 1 * s, State: ProbeAlive},
		{Idle: 2 * s, State: ProbeExpired}, // a fluke: 3 s survived
		{Idle: 3 * s, State: ProbeAlive},
		{Idle: 4 * s, State: ProbeExpired},
		{Idle: 5 * s, State: ProbeExpired},
		{Idle: 6 * s, State: ProbeSkipped},
	}}
	summarise(l)
	if l.Result != Measured || l.Lower != 3*s || l.Upper != 4*s || l.Contradictions != 1 {
		t.Errorf("got %s [%v, %v] contradictions %d", l.Result, l.Lower, l.Upper, l.Contradictions)
	}
	if l.Estimate() != 3500*time.Millisecond {
		t.Errorf("estimate %v", l.Estimate())
	}
	none := &Result{Probes: []Probe{{State: ProbeFailed}}}
	summarise(none)
	if none.Result != Unknown || none.Reason == "" {
		t.Errorf("no decisive probe: %s %q", none.Result, none.Reason)
	}
}

// Without NAT (the servers see this host's own address) there is no
// mapping to measure: Measure says so at once instead of probing.
func TestLifetimeWithoutNAT(t *testing.T) {
	s := startRPServer(t, "honour", 600*time.Millisecond)
	l, err := measure(t, Options{Min: 100 * time.Millisecond, Max: 5 * time.Second, Sockets: 4,
		OwnAddr: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }}, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if l.Result != NoNAT || len(l.Probes) != 0 || !strings.Contains(l.Reason, "127.0.0.1") || l.Elapsed > time.Second {
		t.Errorf("result %q reason %q, %d probes, %v; want no-nat at once", l.Result, l.Reason, len(l.Probes), l.Elapsed)
	}
}

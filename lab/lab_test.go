package lab

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The tests here are the ground truth the rest of natcheck relies on: each
// topology's RFC 4787 behaviour is measured with plain UDP sockets, no STUN.

// servers are four UDP sockets in the internet namespace: two IPs x two ports.
type servers map[string]*net.UDPConn

const (
	s1a = "10:3478" // 203.0.113.10:3478
	s1b = "10:3479" // same IP, other port
	s2a = "11:3478" // other IP
	s2b = "11:3479" // other IP, other port
)

func startServers(t *testing.T, l *Lab) servers {
	t.Helper()
	s := servers{}
	for _, name := range []string{s1a, s1b, s2a, s2b} {
		c, err := l.ListenUDP(l.Internet, "203.0.113."+name)
		if err != nil {
			t.Fatalf("listen %s: %v", name, err)
		}
		s[name] = c
	}
	return s
}

func (s servers) addr(name string) netip.AddrPort {
	return s[name].LocalAddr().(*net.UDPAddr).AddrPort()
}

// recv reads one datagram within d; ok is false on timeout.
func recv(t *testing.T, c *net.UDPConn, d time.Duration) (payload string, from netip.AddrPort, ok bool) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", netip.AddrPort{}, false
		}
		t.Fatalf("read on %v: %v", c.LocalAddr(), err)
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, payload string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(payload), to); err != nil {
		t.Fatalf("send to %v: %v", to, err)
	}
}

// mappedVia sends from c to server name and returns the source address the
// server saw: the client's mapping for that destination.
func mappedVia(t *testing.T, c *net.UDPConn, s servers, name string) netip.AddrPort {
	t.Helper()
	send(t, c, s.addr(name), "map")
	for {
		p, from, ok := recv(t, s[name], 5*time.Second)
		if !ok {
			t.Fatalf("server %s got nothing from the client", name)
		}
		if p == "map" {
			return from
		}
	}
}

func localPort(c *net.UDPConn) uint16 {
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// truth is what RFC 4787 says each topology does.
type truth struct {
	udp      bool     // UDP reaches the internet at all
	eim      bool     // endpoint-independent mapping (else address-and-port-dependent)
	preserve bool     // mapped port equals the local port
	inbound  []string // which servers reach the client after it sent to s1a only
	hairpin  bool     // a packet to the client's own mapping comes back to it
	nat      bool     // there is a NAT (hairpinning is only meaningful then)
}

var truths = map[Kind]truth{
	NoNAT:              {udp: true, eim: true, preserve: true, inbound: []string{s1a, s1b, s2b}},
	Firewall:           {udp: true, eim: true, preserve: true, inbound: []string{s1a}},
	FullCone:           {udp: true, eim: true, preserve: true, inbound: []string{s1a, s1b, s2b}, nat: true},
	RestrictedCone:     {udp: true, eim: true, preserve: true, inbound: []string{s1a, s1b}, nat: true},
	PortRestrictedCone: {udp: true, eim: true, preserve: true, inbound: []string{s1a}, nat: true},
	Symmetric:          {udp: true, inbound: []string{s1a}, nat: true},
	UDPBlocked:         {nat: true},
	DoubleNAT:          {udp: true, eim: true, preserve: true, inbound: []string{s1a}, nat: true},
	Hairpin:            {udp: true, eim: true, preserve: true, inbound: []string{s1a}, nat: true, hairpin: true},
}

func TestTopologies(t *testing.T) {
	for _, kind := range Kinds {
		want, ok := truths[kind]
		if !ok {
			t.Fatalf("no truth written for %s", kind)
		}
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			l := New(t, Options{Kind: kind})
			s := startServers(t, l)
			if !want.udp {
				checkUDPBlocked(t, l, s)
				return
			}
			checkMapping(t, l, s, want)
			checkFiltering(t, l, s, want)
			if want.nat {
				checkHairpin(t, l, s, want.hairpin)
			}
		})
	}
}

// checkMapping sends from one fresh socket to three destinations (other IP,
// other port) and compares the mappings the servers saw.
func checkMapping(t *testing.T, l *Lab, s servers, want truth) {
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := []netip.AddrPort{mappedVia(t, c, s, s1a), mappedVia(t, c, s, s2a), mappedVia(t, c, s, s1b)}
	t.Logf("local port %d, mapped %v", localPort(c), m)
	for _, a := range m {
		if a.Addr() != l.PublicIP {
			t.Errorf("mapped address %v, want public IP %v", a, l.PublicIP)
		}
	}
	if want.eim {
		if m[0] != m[1] || m[0] != m[2] {
			t.Errorf("mapping differs by destination %v, want endpoint-independent", m)
		}
	} else if m[0] == m[1] || m[0] == m[2] || m[1] == m[2] {
		t.Errorf("mapping reused across destinations %v, want address-and-port-dependent", m)
	}
	if got := m[0].Port() == localPort(c); got != want.preserve {
		t.Errorf("port preserved = %v (local %d, mapped %d), want %v", got, localPort(c), m[0].Port(), want.preserve)
	}
}

// checkFiltering has a fresh socket send to s1a only, then every other
// server sends to the mapping; which of them arrive is the filtering.
func checkFiltering(t *testing.T, l *Lab, s servers, want truth) {
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := mappedVia(t, c, s, s1a)
	// The expected-blocked senders go first and twice; s1a's reply goes
	// last, so once it has arrived everything else had its chance.
	for range 2 {
		for _, name := range []string{s2b, s1b} {
			send(t, s[name], m, name)
		}
	}
	send(t, s[s1a], m, s1a)
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	sawLast := false
	for time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if sawLast {
			wait = 300 * time.Millisecond
		}
		p, from, ok := recv(t, c, wait)
		if !ok {
			break
		}
		if s.addr(p) != from {
			t.Errorf("datagram %q came from %v, want %v", p, from, s.addr(p))
		}
		if !slices.Contains(got, p) {
			got = append(got, p)
		}
		sawLast = sawLast || p == s1a
	}
	slices.Sort(got)
	wantIn := slices.Sorted(slices.Values(want.inbound))
	if !slices.Equal(got, wantIn) {
		t.Errorf("inbound reached the client from %v, want %v (203.0.113.IP:port)", got, wantIn)
	}
}

// checkHairpin sends to the client's own mapping, from the mapped socket and
// from a second socket, and sees whether the router turns them around.
func checkHairpin(t *testing.T, l *Lab, s servers, want bool) {
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m := mappedVia(t, c, s, s1a)
	send(t, c, m, "self")
	send(t, other, m, "other")
	wait := 5 * time.Second
	if !want {
		wait = 500 * time.Millisecond
	}
	var got []string
	for len(got) < 2 {
		p, from, ok := recv(t, c, wait)
		if !ok {
			break
		}
		got = append(got, p)
		if from.Addr() != l.PublicIP {
			t.Errorf("hairpinned %q came from %v, want the public address %v", p, from, l.PublicIP)
		}
		if p == "self" && from != m {
			t.Errorf("hairpinned own datagram came from %v, want own mapping %v", from, m)
		}
	}
	if hairpin := len(got) > 0; hairpin != want {
		t.Errorf("hairpinning = %v (got %v), want %v", hairpin, got, want)
	}
	if want && len(got) != 2 {
		t.Errorf("hairpinned %v, want both self and other", got)
	}
}

// checkUDPBlocked: UDP never reaches the internet, TCP still does.
func checkUDPBlocked(t *testing.T, l *Lab, s servers) {
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		send(t, c, s.addr(s1a), "map")
	}
	if p, from, ok := recv(t, s[s1a], time.Second); ok {
		t.Errorf("UDP passed a UDP-blocking router: %q from %v", p, from)
	}
	ln, err := l.Listen(l.Internet, "tcp4", "203.0.113.10:443")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan netip.AddrPort, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- netip.MustParseAddrPort(conn.RemoteAddr().String())
			conn.Close()
		}
	}()
	conn, err := l.Dial(l.Client, &net.Dialer{Timeout: 5 * time.Second}, "tcp4", "203.0.113.10:443")
	if err != nil {
		t.Fatalf("TCP through a UDP-blocking router: %v", err)
	}
	conn.Close()
	select {
	case from := <-accepted:
		if from.Addr() != l.PublicIP {
			t.Errorf("TCP arrived from %v, want %v", from, l.PublicIP)
		}
	case <-time.After(5 * time.Second):
		t.Error("TCP connection not accepted")
	}
}

// TestDoubleNATHop proves the carrier NAT is visible to TTL-limited probes:
// hop 1 is the home router, hop 2 answers from 100.64.0.0/10.
func TestDoubleNATHop(t *testing.T) {
	t.Parallel()
	l := New(t, Options{Kind: DoubleNAT})
	s := startServers(t, l)
	icmp, err := l.ListenPacket(l.Client, "ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	if !cgnat.Contains(l.RouterWAN) {
		t.Errorf("home router WAN %v not in %v", l.RouterWAN, cgnat)
	}
	for ttl, want := range map[int]netip.Addr{1: l.Gateway, 2: l.CarrierIP} {
		setTTL(t, c, ttl)
		send(t, c, s.addr(s1a), "ttl")
		from := timeExceeded(t, icmp)
		if from != want {
			t.Errorf("TTL %d: time exceeded from %v, want %v", ttl, from, want)
		}
		if ttl == 2 && !cgnat.Contains(from) {
			t.Errorf("hop 2 is %v, not in %v", from, cgnat)
		}
	}
	setTTL(t, c, 3)
	if m := mappedVia(t, c, s, s1a); m.Addr() != l.PublicIP {
		t.Errorf("TTL 3 arrived from %v, want %v", m, l.PublicIP)
	}
}

func setTTL(t *testing.T, c *net.UDPConn, ttl int) {
	t.Helper()
	if err := ipv4.NewConn(c).SetTTL(ttl); err != nil {
		t.Fatalf("set TTL: %v", err)
	}
}

// timeExceeded waits for an ICMP time-exceeded message and returns its sender.
func timeExceeded(t *testing.T, c net.PacketConn) netip.Addr {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no ICMP time exceeded: %v", err)
		}
		if n > 0 && buf[0] == 11 { // ICMP type 11: time exceeded
			return netip.MustParseAddr(from.String())
		}
	}
}

// echo answers every datagram on c with the same bytes until c is closed.
func echo(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// TestLoss sends numbered datagrams through a lossy WAN and checks that
// roughly the configured share is lost each way (loose bounds: it is random).
func TestLoss(t *testing.T) {
	t.Parallel()
	const percent, n = 30, 300
	l := New(t, Options{Kind: PortRestrictedCone, LossPercent: percent})
	srv, err := l.ListenUDP(l.Internet, "203.0.113.10:7")
	if err != nil {
		t.Fatal(err)
	}
	counted := make(chan int, 1)
	go func() {
		// Count what arrives at the server, echoing it back.
		buf := make([]byte, 64)
		got := 0
		for {
			_ = srv.SetReadDeadline(time.Now().Add(time.Second))
			k, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				counted <- got
				return
			}
			got++
			_, _ = srv.WriteToUDPAddrPort(buf[:k], from)
		}
	}()
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	// Echoes are counted as they come, so no socket buffer ever overflows
	// and only the loss rule decides what is missing.
	cameBack := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		got := 0
		for {
			_ = c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				cameBack <- got
				return
			}
			got++
		}
	}()
	to := srv.LocalAddr().(*net.UDPAddr).AddrPort()
	for i := range n {
		if _, err := c.WriteToUDPAddrPort([]byte("x"), to); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	back := <-cameBack
	there := <-counted
	t.Logf("%d%% loss each way: %d/%d reached the server, %d came back", percent, there, n, back)
	// Expected 70% one way and 49% round trip; the bounds are many standard
	// deviations wide so only a broken loss rule fails them.
	if there < n*55/100 || there > n*85/100 {
		t.Errorf("%d/%d reached the server, want about 70%%", there, n)
	}
	if back < n*35/100 || back > n*63/100 {
		t.Errorf("%d/%d came back, want about 49%%", back, n)
	}
}

// TestDelay measures the round trip through the delay relay with a UDP echo:
// it must be about twice the one-way delay, never less.
func TestDelay(t *testing.T) {
	t.Parallel()
	const delayMs = 40
	l := New(t, Options{Kind: PortRestrictedCone, DelayMs: delayMs})
	srv, err := l.ListenUDP(l.Internet, "203.0.113.10:7")
	if err != nil {
		t.Fatal(err)
	}
	go echo(srv)
	c, err := l.ListenUDP(l.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var rtts []time.Duration
	for i := range 10 {
		start := time.Now()
		send(t, c, srv.LocalAddr().(*net.UDPAddr).AddrPort(), "ping")
		if _, _, ok := recv(t, c, 3*time.Second); !ok {
			t.Fatalf("ping %d: no echo through the delay relay", i)
		}
		if i > 0 { // the first one also waits for ARP
			rtts = append(rtts, time.Since(start))
		}
	}
	slices.Sort(rtts)
	median, want := rtts[len(rtts)/2], 2*delayMs*time.Millisecond
	t.Logf("one-way delay %dms: RTT min %v, median %v, max %v", delayMs, rtts[0], median, rtts[len(rtts)-1])
	if rtts[0] < want {
		t.Errorf("minimum RTT %v is below twice the delay %v", rtts[0], want)
	}
	if median > want+40*time.Millisecond {
		t.Errorf("median RTT %v, want close to %v", median, want)
	}
	// TCP passes the relay too (checksum offload and segmentation survive).
	ln, err := l.Listen(l.Internet, "tcp4", "203.0.113.11:80")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("natcheck", 64<<10) // 512 KiB: many full-size segments
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = conn.Write([]byte(big))
	}()
	conn, err := l.Dial(l.Client, &net.Dialer{Timeout: 5 * time.Second}, "tcp4", "203.0.113.11:80")
	if err != nil {
		t.Fatalf("TCP through the relay: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if sb.Len() != len(big) || sb.String() != big {
		t.Errorf("TCP through the relay: got %d bytes intact=%v, want %d", sb.Len(), sb.String() == big, len(big))
	}
}

// TestNamesUnique checks two labs in one process share no namespace name.
func TestNamesUnique(t *testing.T) {
	t.Parallel()
	a := New(t, Options{Kind: NoNAT})
	b := New(t, Options{Kind: NoNAT})
	for _, n := range []string{a.Client, a.Router, a.Internet} {
		if !strings.HasPrefix(n, namePrefix) {
			t.Errorf("namespace %q lacks prefix %q", n, namePrefix)
		}
		if slices.Contains([]string{b.Client, b.Router, b.Internet}, n) {
			t.Errorf("namespace %q used by two labs", n)
		}
	}
}

func TestStaleName(t *testing.T) {
	if unsupported != "" {
		t.Skipf("skipping: %s (stale-namespace cleanup is Linux-only)", unsupported)
	}
	for name, want := range map[string]bool{
		"nclab-" + strconv.Itoa(os.Getpid()) + "-1-client": false, // ours, alive
		"nclab-1-1-client":          false, // pid 1 is alive
		"nclab-2147483646-1-client": true,  // no such process
		"other-2147483646-1-client": false, // not ours
		"nclab-x-1":                 false,
	} {
		if got := staleName(name); got != want {
			t.Errorf("staleName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRequireReportsMissingTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	switch {
	case unsupported != "":
		if got := missing(); got != unsupported {
			t.Errorf("missing() = %q on %s, want %q", got, runtime.GOOS, unsupported)
		}
	case os.Geteuid() == 0:
		if got := missing(); !strings.Contains(got, "ip not found") {
			t.Errorf("missing() = %q with an empty PATH, want it to name ip", got)
		}
	default:
		if got := missing(); got == "" {
			t.Error("missing() = \"\" without root, want a reason")
		}
	}
}

// TestHelpers checks Command and Start run inside the namespace they name,
// and BuildNatcheck gives a runnable binary, built once.
func TestHelpers(t *testing.T) {
	t.Parallel()
	l := New(t, Options{Kind: PortRestrictedCone})
	out, err := l.Command(t.Context(), l.Client, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), l.ClientIP.String()+"/24") {
		t.Errorf("Command in client: %v %q, want an address %v", err, out, l.ClientIP)
	}
	cmd := l.Start(t, l.Router, "sleep", "60")
	// The child enters the namespace (ip netns exec) a moment after it starts.
	inRouter := false
	for deadline := time.Now().Add(5 * time.Second); !inRouter && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids, _ := exec.Command("ip", "netns", "pids", l.Router).Output()
		inRouter = slices.Contains(strings.Fields(string(pids)), strconv.Itoa(cmd.Process.Pid))
	}
	if !inRouter {
		t.Errorf("started pid %d never appeared in the router namespace", cmd.Process.Pid)
	}
	bin := BuildNatcheck(t)
	if again := BuildNatcheck(t); again != bin {
		t.Errorf("BuildNatcheck gave %q then %q, want one build", bin, again)
	}
	if out, err := l.Command(t.Context(), l.Client, bin, "--help").CombinedOutput(); err != nil {
		t.Errorf("natcheck --help in the client namespace: %v\n%s", err, out)
	}
}

// TestInternetVoid: from the internet, a packet to an address nobody
// routes (a client's private LAN) leaves without an error, as on the real
// internet, in the single-site lab and in the pair; a server in the lab
// that relays to a peer's private candidate must not see ENETUNREACH.
func TestInternetVoid(t *testing.T) {
	t.Parallel()
	for _, l := range []*Lab{New(t, Options{Kind: PortRestrictedCone}), NewPair(t, PairOptions{A: Symmetric, B: FullCone}).Lab} {
		conn, err := l.ListenUDP(l.Internet, l.ServerIPs[0].String()+":0")
		if err != nil {
			t.Fatal(err)
		}
		to := &net.UDPAddr{IP: net.IPv4(192, 168, 77, 7), Port: 9}
		for i := range 3 {
			if _, err := conn.WriteToUDP([]byte("x"), to); err != nil {
				t.Errorf("send %d from the internet to unrouted %v: %v, want it sent into the void", i, to, err)
			}
		}
	}
}

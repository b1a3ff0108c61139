package lab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ground truth of two-site labs, with plain UDP sockets and no STUN:
// a hole punch the way ICE does one (each side sends to the other's
// mapping, answers whatever reaches it at the address it came from) gives
// the expected direct outcome for every pair of kinds, both
// router policies, on one LAN with and without hairpinning.

// PairDirect is the expected direct UDP outcome between two kinds (the
// issue's table, symmetric): true where a hole punch connects.
func pairDirect(a, b Kind) bool {
	if a == UDPBlocked || b == UDPBlocked {
		return false
	}
	apdf := func(k Kind) bool { return k == PortRestrictedCone || k == Firewall || k == Symmetric }
	if (a == Symmetric && apdf(b)) || (b == Symmetric && apdf(a)) {
		return false
	}
	return true
}

// reflector answers every datagram with the address it came from, as
// text: a STUN server without STUN. It lives at 203.0.113.10:4000.
func reflector(t *testing.T, l *Lab) netip.AddrPort {
	t.Helper()
	c, err := l.ListenUDP(l.Internet, "203.0.113.10:4000")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// mapping asks the reflector which address c is seen as: invalid if it
// never answers (UDP blocked).
func mapping(t *testing.T, c *net.UDPConn, refl netip.AddrPort) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 100)
	for range 5 {
		if _, err := c.WriteToUDPAddrPort([]byte("map"), refl); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err == nil && from == refl {
			a, err := netip.ParseAddrPort(string(buf[:n]))
			if err != nil {
				t.Fatalf("reflector said %q", buf[:n])
			}
			return a
		}
	}
	return netip.AddrPort{}
}

// puncher is one side of a hole punch.
type puncher struct {
	c       *net.UDPConn
	name    string
	mu      sync.Mutex
	targets []netip.AddrPort
	got     []netip.AddrPort // sources the peer's datagrams came from
	peer    *puncher         // when both have heard from each other, the punch is over
}

func (p *puncher) heard() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got) > 0
}

// run sends to every target every 20 ms from start until stop, and
// treats any source of a datagram as a new target (ICE's peer-reflexive
// candidate: the answer goes where the check came from).
func (p *puncher) run(start time.Duration, stop time.Time, refl netip.AddrPort, wg *sync.WaitGroup) {
	defer wg.Done()
	time.Sleep(start)
	buf := make([]byte, 100)
	for time.Now().Before(stop) {
		if p.peer != nil && p.heard() && p.peer.heard() {
			// One more round, so the peer's last datagrams find an answer.
			stop = time.Now().Add(100 * time.Millisecond)
			p.peer = nil
		}
		p.mu.Lock()
		targets := slices.Clone(p.targets)
		p.mu.Unlock()
		for _, to := range targets {
			_, _ = p.c.WriteToUDPAddrPort([]byte("punch from "+p.name), to)
		}
		_ = p.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			_, from, err := p.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if from == refl {
				continue
			}
			p.mu.Lock()
			if !slices.Contains(p.got, from) {
				p.got = append(p.got, from)
			}
			if !slices.Contains(p.targets, from) {
				p.targets = append(p.targets, from)
			}
			p.mu.Unlock()
		}
	}
}

// punchResult says what a hole punch between two sites did.
type punchResult struct {
	mapA, mapB netip.AddrPort   // what the reflector saw
	gotA, gotB []netip.AddrPort // where each side's received datagrams came from
}

func (r punchResult) direct() bool { return len(r.gotA) > 0 && len(r.gotB) > 0 }

// punch has A and B learn their mappings, then B punch first (it learns
// A's address first, as the answering side of a ticket exchange does)
// and A lead seconds later, for up to 3 s. viaHost sends to the peers'
// own addresses instead of their mappings.
func punch(t *testing.T, p *Pair, lead time.Duration, viaHost bool) punchResult {
	t.Helper()
	refl := reflector(t, p.Lab)
	ca, err := p.ListenUDP(p.A.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := p.ListenUDP(p.B.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var r punchResult
	r.mapA, r.mapB = mapping(t, ca, refl), mapping(t, cb, refl)
	a := &puncher{c: ca, name: "A"}
	b := &puncher{c: cb, name: "B"}
	a.peer, b.peer = b, a
	for _, x := range []struct {
		p    *puncher
		m    netip.AddrPort
		c    *net.UDPConn
		site Site
	}{{a, r.mapB, cb, p.B}, {b, r.mapA, ca, p.A}} {
		switch {
		case viaHost:
			x.p.targets = []netip.AddrPort{netip.AddrPortFrom(x.site.ClientIP, localPort(x.c))}
		case x.m.IsValid():
			x.p.targets = []netip.AddrPort{x.m}
		default: // no mapping learnt (UDP blocked): its public address and local port, a guess
			x.p.targets = []netip.AddrPort{netip.AddrPortFrom(x.site.PublicIP, localPort(x.c))}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	stop := time.Now().Add(3 * time.Second)
	go b.run(0, stop, refl, &wg)
	go a.run(lead, stop, refl, &wg)
	wg.Wait()
	r.gotA, r.gotB = a.got, b.got
	return r
}

// TestPairTable: every cell of the table (routers that drop
// unsolicited UDP), all at once; each side's mapping is on its site's
// public address.
func TestPairTable(t *testing.T) {
	kinds := []Kind{NoNAT, FullCone, RestrictedCone, PortRestrictedCone, Symmetric, UDPBlocked}
	for i, a := range kinds {
		for _, b := range kinds[i:] {
			t.Run(string(a)+"/"+string(b), func(t *testing.T) {
				t.Parallel()
				p := NewPair(t, PairOptions{A: a, B: b})
				r := punch(t, p, 200*time.Millisecond, false)
				t.Logf("mappings A %v B %v; A got from %v, B got from %v", r.mapA, r.mapB, r.gotA, r.gotB)
				for _, s := range []struct {
					site Site
					m    netip.AddrPort
				}{{p.A, r.mapA}, {p.B, r.mapB}} {
					if s.site.Kind == UDPBlocked {
						if s.m.IsValid() {
							t.Errorf("%s: UDP reached the reflector from a udp-blocked site", s.site.Client)
						}
					} else if s.m.Addr() != s.site.PublicIP {
						t.Errorf("%s: mapped %v, want on %v", s.site.Client, s.m, s.site.PublicIP)
					}
				}
				if want := pairDirect(a, b); r.direct() != want {
					t.Errorf("direct = %v, want %v", r.direct(), want)
				}
				// Datagrams come from the peer's public address.
				for _, g := range r.gotA {
					if g.Addr() != p.B.PublicIP {
						t.Errorf("A got a datagram from %v, not from B's %v", g, p.B.PublicIP)
					}
				}
				for _, g := range r.gotB {
					if g.Addr() != p.A.PublicIP {
						t.Errorf("B got a datagram from %v, not from A's %v", g, p.A.PublicIP)
					}
				}
			})
		}
	}
}

// ctEntry is one conntrack line: original and reply tuples.
var ctEntry = regexp.MustCompile(`src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)`)

type ctTuple struct {
	src, dst   netip.AddrPort
	rsrc, rdst netip.AddrPort
	unreplied  bool
	line       string
}

func conntrackEntries(t *testing.T, l *Lab, ns string) []ctTuple {
	t.Helper()
	var out []ctTuple
	for _, line := range strings.Split(l.Conntrack(t, ns), "\n") {
		m := ctEntry.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ap := func(ip, port string) netip.AddrPort {
			n, _ := strconv.Atoi(port)
			return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(n))
		}
		out = append(out, ctTuple{src: ap(m[1], m[3]), dst: ap(m[2], m[4]), rsrc: ap(m[5], m[7]), rdst: ap(m[6], m[8]),
			unreplied: strings.Contains(line, "[UNREPLIED]"), line: line})
	}
	return out
}

// TestPairRouterAnswers: the Linux router trap, step by step, between two
// port-restricted cones. B sends to A's mapping before A has sent to B.
// A router that answers (the kernel's ICMP port unreachable) keeps a
// conntrack entry for B's tuple; A's own packet to B then leaves from a
// new public port, and the hole punch fails. A router that drops keeps
// nothing, A's packet keeps its mapping, and the punch connects.
func TestPairRouterAnswers(t *testing.T) {
	for _, answers := range []bool{false, true} {
		t.Run(fmt.Sprintf("answers=%v", answers), func(t *testing.T) {
			t.Parallel()
			p := NewPair(t, PairOptions{A: PortRestrictedCone, B: PortRestrictedCone, RouterAnswers: answers})
			refl := reflector(t, p.Lab)
			ca, err := p.ListenUDP(p.A.Client, "0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			cb, err := p.ListenUDP(p.B.Client, "0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			mapA, mapB := mapping(t, ca, refl), mapping(t, cb, refl)
			if !mapA.IsValid() || !mapB.IsValid() {
				t.Fatalf("mappings %v %v", mapA, mapB)
			}
			// B first: unsolicited at A's router.
			icmp, err := p.ListenPacket(p.B.Client, "ip4:icmp", "0.0.0.0")
			if err != nil {
				t.Fatal(err)
			}
			send(t, cb, mapA, "early")
			_ = icmp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 1500)
			n, _, err := icmp.ReadFrom(buf)
			gotUnreachable := err == nil && n > 0 && buf[0] == 3 // destination unreachable
			if gotUnreachable != answers {
				t.Errorf("B got ICMP destination unreachable: %v, want %v", gotUnreachable, answers)
			}
			var early *ctTuple
			for _, e := range conntrackEntries(t, p.Lab, p.A.Router) {
				if e.src == mapB && e.dst == mapA {
					early = &e
				}
			}
			if (early != nil) != answers {
				t.Errorf("A's router keeps an entry for B's early tuple: %v, want %v\n%s", early != nil, answers, p.Conntrack(t, p.A.Router))
			} else if early != nil {
				t.Logf("A's router after B's early datagram: %s", early.line)
			}
			// Now A sends to B: which public port does it leave from?
			send(t, ca, mapB, "late")
			var late *ctTuple
			for _, e := range conntrackEntries(t, p.Lab, p.A.Router) {
				if e.src.Addr() == p.A.ClientIP && e.dst == mapB {
					late = &e
				}
			}
			if late == nil {
				t.Fatalf("no conntrack entry for A's packet to B:\n%s", p.Conntrack(t, p.A.Router))
			}
			t.Logf("A's router after A's datagram to B: %s", late.line)
			if moved := late.rdst.Port() != mapA.Port(); moved != answers {
				t.Errorf("A's mapping toward B is port %d (STUN saw %d): moved %v, want %v", late.rdst.Port(), mapA.Port(), moved, answers)
			}
			// And the punch (B keeps sending to the STUN mapping).
			a := &puncher{c: ca, name: "A", targets: []netip.AddrPort{mapB}}
			b := &puncher{c: cb, name: "B", targets: []netip.AddrPort{mapA}}
			var wg sync.WaitGroup
			wg.Add(2)
			stop := time.Now().Add(2 * time.Second)
			go a.run(0, stop, refl, &wg)
			go b.run(0, stop, refl, &wg)
			wg.Wait()
			r := punchResult{gotA: a.got, gotB: b.got}
			if r.direct() == answers {
				t.Errorf("direct = %v (A got from %v, B from %v), want %v", r.direct(), a.got, b.got, !answers)
			}
		})
	}
}

// TestPairRouterAnswersPunch: the same trap with no ordering by hand:
// both sites punch, B 200 ms ahead; routers that answer fail, routers
// that drop connect.
func TestPairRouterAnswersPunch(t *testing.T) {
	for _, answers := range []bool{false, true} {
		t.Run(fmt.Sprintf("answers=%v", answers), func(t *testing.T) {
			t.Parallel()
			p := NewPair(t, PairOptions{A: PortRestrictedCone, B: PortRestrictedCone, RouterAnswers: answers})
			r := punch(t, p, 200*time.Millisecond, false)
			if r.direct() == answers {
				t.Errorf("direct = %v (A got from %v, B from %v), want %v", r.direct(), r.gotA, r.gotB, !answers)
			}
		})
	}
}

// TestPairSameLAN: two clients behind one port-restricted cone. Host
// addresses always connect; the public mappings only through a router
// that hairpins, and the peer's datagrams then come from its mapping.
func TestPairSameLAN(t *testing.T) {
	for _, tc := range []struct {
		name             string
		hairpin, viaHost bool
		direct           bool
	}{
		{"host", false, true, true},
		{"mapped-no-hairpin", false, false, false},
		{"mapped-hairpin", true, false, true},
		{"host-hairpin", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := NewPair(t, PairOptions{SameLAN: true, Hairpin: tc.hairpin})
			if p.A.Router != p.B.Router || p.A.PublicIP != p.B.PublicIP || p.B.ClientIP != p.A.ClientIP.Next() {
				t.Fatalf("sites A %+v B %+v: want one router and one public address", p.A, p.B)
			}
			r := punch(t, p, 0, tc.viaHost)
			t.Logf("mappings A %v B %v; A got from %v, B got from %v", r.mapA, r.mapB, r.gotA, r.gotB)
			if r.direct() != tc.direct {
				t.Errorf("direct = %v, want %v", r.direct(), tc.direct)
			}
			if tc.direct && !tc.viaHost {
				if !slices.Contains(r.gotA, r.mapB) || !slices.Contains(r.gotB, r.mapA) {
					t.Errorf("hairpinned datagrams come from %v and %v, want the mappings %v and %v", r.gotA, r.gotB, r.mapB, r.mapA)
				}
			}
		})
	}
}

// TestPairDelayLoss: at DelayMs 20 the A-B round trip is at least 40 ms
// (each WAN link holds 10 ms each way) and the server round trip at
// least 20 ms; at 20% loss about 20% of datagrams from A to B are lost.
func TestPairDelayLoss(t *testing.T) {
	t.Parallel()
	const delayMs, loss, n = 20, 20, 400
	p := NewPair(t, PairOptions{A: NoNAT, B: NoNAT, DelayMs: delayMs, LossPercent: loss})
	srv, err := p.ListenUDP(p.Internet, "203.0.113.10:7")
	if err != nil {
		t.Fatal(err)
	}
	go echo(srv)
	be, err := p.ListenUDP(p.B.Client, "0.0.0.0:0") // B's echo
	if err != nil {
		t.Fatal(err)
	}
	go echo(be)
	bc, err := p.ListenUDP(p.B.Client, "0.0.0.0:0") // B's counter
	if err != nil {
		t.Fatal(err)
	}
	ac, err := p.ListenUDP(p.A.Client, "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	rtt := func(c *net.UDPConn, to netip.AddrPort) []time.Duration {
		var ds []time.Duration
		for i := range 30 {
			start := time.Now()
			send(t, c, to, fmt.Sprint(i))
			for {
				// An echo of an earlier ping that came late is skipped.
				got, _, ok := recv(t, c, 400*time.Millisecond)
				if !ok {
					break
				}
				if got == fmt.Sprint(i) {
					if i > 0 { // the first one also waits for ARP
						ds = append(ds, time.Since(start))
					}
					break
				}
			}
		}
		slices.Sort(ds)
		return ds
	}
	srvRTT := rtt(ac, srv.LocalAddr().(*net.UDPAddr).AddrPort())
	peerRTT := rtt(ac, netip.AddrPortFrom(p.B.ClientIP, localPort(be)))
	counted := make(chan int)
	go func() {
		buf := make([]byte, 64)
		count := 0
		for {
			_ = bc.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := bc.ReadFromUDPAddrPort(buf); err != nil {
				counted <- count
				return
			}
			count++
		}
	}()
	toB := netip.AddrPortFrom(p.B.ClientIP, localPort(bc))
	for range n {
		send(t, ac, toB, "x")
		time.Sleep(time.Millisecond)
	}
	count := <-counted
	if len(srvRTT) < 5 || len(peerRTT) < 5 {
		t.Fatalf("too few echoes: server %v, peer %v", srvRTT, peerRTT)
	}
	t.Logf("delay %d ms: server RTT min %v median %v; A-B RTT min %v median %v; loss %d%%: %d/%d from A reached B",
		delayMs, srvRTT[0], srvRTT[len(srvRTT)/2], peerRTT[0], peerRTT[len(peerRTT)/2], loss, count, n)
	if srvRTT[0] < delayMs*time.Millisecond || peerRTT[0] < 2*delayMs*time.Millisecond {
		t.Errorf("RTT below the delay: server min %v (want >= %d ms), peer min %v (want >= %d ms)", srvRTT[0], delayMs, peerRTT[0], 2*delayMs)
	}
	if peerRTT[len(peerRTT)/2] > 2*delayMs*time.Millisecond+30*time.Millisecond {
		t.Errorf("A-B median RTT %v, want close to %d ms", peerRTT[len(peerRTT)/2], 2*delayMs)
	}
	// Expected 80%: sigma 2%, bounds 5 sigma.
	if count < n*70/100 || count > n*90/100 {
		t.Errorf("%d/%d reached B, want about %d%%", count, n, 100-loss)
	}
}

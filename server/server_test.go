package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/pion/stun/v3"
)

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
	lo6 = netip.MustParseAddr("::1")
)

// startServer binds and serves cfg until the test ends; cleanup cancels it
// and checks that Serve returned nil.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, _ := testutil.StartServer(t, Listen, cfg)
	return s
}

func udpClient(t *testing.T, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends req to dst and waits for the datagram answering it
// (matched by transaction ID), returning it and where it came from. A
// generous deadline guards against a hung test, not a timing assertion.
func exchange(t *testing.T, c *net.UDPConn, dst netip.AddrPort, req []byte) ([]byte, netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(req, dst); err != nil {
		t.Fatal(err)
	}
	return recvReply(t, c, req)
}

func recvReply(t *testing.T, c *net.UDPConn, req []byte) ([]byte, netip.AddrPort) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if string(buf[4:20]) != string(req[4:20]) {
		t.Fatalf("answer with a foreign transaction ID from %v", from)
	}
	return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

func localAP(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TestUDPFourEndpoints checks RFC 5780 table 1 on real sockets, for the
// batch and the one-datagram-per-call paths.
func TestUDPFourEndpoints(t *testing.T) {
	for _, batch := range []int{1, 32} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, Workers: 2, Batch: batch, Software: "natcheck-test", NoTCP: true})
			eps := s.Endpoints()
			if len(eps) != 4 || eps[0].Port() != eps[2].Port() || eps[1].Port() != eps[3].Port() || eps[0].Port() == eps[1].Port() {
				t.Fatalf("endpoints %v", eps)
			}
			c := udpClient(t, lo1)
			for local := 0; local < 4; local++ {
				for _, flags := range []byte{0, changePort, changeIP, changeIP | changePort} {
					req := buildReq(t, changeReq(flags), stun.Fingerprint)
					resp, from := exchange(t, c, eps[local], req)
					want := local
					if flags&changeIP != 0 {
						want ^= epAltIP
					}
					if flags&changePort != 0 {
						want ^= epAltPort
					}
					if from != eps[want] {
						t.Errorf("to %v flags %#x: answered from %v, want %v", eps[local], flags, from, eps[want])
					}
					v := viewPion(t, decodePion(t, resp))
					if v.origin != from || v.other != eps[local^3] || v.xor != localAP(c) || v.mapped != localAP(c) || !v.fingerprint || v.software != "natcheck-test" {
						t.Errorf("to %v flags %#x: %+v", eps[local], flags, v)
					}
				}
			}
			// A client on the alternate address sees its own address mapped.
			c2 := udpClient(t, lo2)
			resp, _ := exchange(t, c2, eps[0], buildReq(t))
			if v := viewPion(t, decodePion(t, resp)); v.xor != localAP(c2) {
				t.Errorf("XOR-MAPPED-ADDRESS %v, want %v", v.xor, localAP(c2))
			}
		})
	}
}

func TestUDPSingleAddress(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1}, NoTCP: true})
	eps := s.Endpoints()
	if len(eps) != 2 {
		t.Fatalf("endpoints %v", eps)
	}
	c := udpClient(t, lo1)
	resp, from := exchange(t, c, eps[0], buildReq(t, changeReq(changePort)))
	if v := viewPion(t, decodePion(t, resp)); from != eps[1] || v.other.IsValid() || v.origin != eps[1] {
		t.Errorf("change port: from %v, %+v", from, v)
	}
	for _, flags := range []byte{changeIP, changeIP | changePort} {
		resp, from = exchange(t, c, eps[0], buildReq(t, changeReq(flags)))
		code, unknown := errorOf(t, resp)
		if from != eps[0] || code != 420 || len(unknown) != 1 || unknown[0] != stun.AttrChangeRequest {
			t.Errorf("flags %#x: from %v, %d %v", flags, from, code, unknown)
		}
	}
}

func TestUDPIPv6(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo6, lo1}, NoTCP: true})
	eps := s.Endpoints()
	c := udpClient(t, lo6)
	var v6 netip.AddrPort
	for _, ep := range eps {
		if ep.Addr().Is6() {
			v6 = ep
			break
		}
	}
	resp, from := exchange(t, c, v6, buildReq(t))
	if v := viewPion(t, decodePion(t, resp)); from != v6 || v.xor != localAP(c) || v.origin != v6 {
		t.Errorf("from %v: %+v", from, v)
	}
}

func TestUDPResponsePort(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, NoTCP: true})
	sender, receiver := udpClient(t, lo1), udpClient(t, lo1)
	port := localAP(receiver).Port()
	for _, v := range [][]byte{{byte(port >> 8), byte(port)}, {byte(port >> 8), byte(port), 0, 0}} {
		req := buildReq(t, rawAttr(attrResponsePort, v))
		if _, err := sender.WriteToUDPAddrPort(req, s.Endpoints()[0]); err != nil {
			t.Fatal(err)
		}
		resp, _ := recvReply(t, receiver, req)
		if v := viewPion(t, decodePion(t, resp)); v.xor != localAP(sender) {
			t.Errorf("RESPONSE-PORT answer maps %v, want the sender %v", v.xor, localAP(sender))
		}
	}
}

func TestUDPPaddingAndLegacy(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, NoTCP: true})
	eps := s.Endpoints()
	c := udpClient(t, lo1)
	req := buildReq(t, rawAttr(attrPadding, make([]byte, 1500)))
	resp, _ := exchange(t, c, eps[0], req)
	if v := viewPion(t, decodePion(t, resp)); v.padding != 1500 || len(resp) > len(req)+100 {
		t.Errorf("padding %d, %d bytes for %d", v.padding, len(resp), len(req))
	}
	resp, _ = exchange(t, c, eps[0], buildReq(t, rawAttr(attrPadding, make([]byte, 8)), rawAttr(attrResponsePort, []byte{1, 2})))
	if code, _ := errorOf(t, resp); code != 400 {
		t.Errorf("PADDING+RESPONSE-PORT: %d", code)
	}
	// An RFC 3489 client asks for a change of address and port.
	legacy := legacyReq(tlv(attrChangeRequest, 0, 0, 0, changeIP|changePort))
	resp, from := exchange(t, c, eps[0], legacy)
	attrs := legacyAttrs(t, resp)
	if from != eps[3] || legacyAddr(attrs[attrMappedAddress]) != localAP(c) ||
		legacyAddr(attrs[attrSourceAddress]) != eps[3] || legacyAddr(attrs[attrChangedAddress]) != eps[3] {
		t.Errorf("legacy: from %v attrs %v", from, attrs)
	}
}

// TestUDPFlood sends random bytes, truncated and corrupted requests, then
// a valid one: the only datagram that comes back is the valid answer.
func TestUDPFlood(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, NoTCP: true, Workers: 2})
	eps := s.Endpoints()
	c := udpClient(t, lo1)
	r := rand.New(rand.NewPCG(7, 8))
	valid := buildReq(t, changeReq(6), stun.Fingerprint)
	const n = 3000
	buf := make([]byte, 3000)
	for i := 0; i < n; i++ {
		var pkt []byte
		switch i % 4 {
		case 0: // random bytes of random length
			pkt = buf[:r.IntN(len(buf))]
			for j := range pkt {
				pkt[j] = byte(r.Uint32())
			}
		case 1: // truncated valid request
			pkt = valid[:r.IntN(len(valid))]
		case 2: // one flipped bit, caught by FINGERPRINT. Not in FINGERPRINT's
			// own type: that turns it into another, valid, attribute.
			pkt = append(buf[:0], valid...)
			at := r.IntN(len(pkt) - 2)
			if at >= len(pkt)-8 {
				at += 2
			}
			pkt[at] ^= 1 << r.IntN(8)
		case 3: // a STUN response or indication
			pkt = append(buf[:0], valid...)
			pkt[1] = 0x11
		}
		if _, err := c.WriteToUDPAddrPort(pkt, eps[i%4]); err != nil {
			t.Fatal(err)
		}
	}
	req := buildReq(t)
	resp, from := exchange(t, c, eps[0], req) // fails on any other datagram
	if from != eps[0] || viewPion(t, decodePion(t, resp)).xor != localAP(c) {
		t.Errorf("after flood: from %v", from)
	}
	// Other workers may still be dropping their share of the flood.
	dropped := func(tot Totals) (sum uint64) {
		for _, d := range tot.Drops {
			sum += d
		}
		return sum
	}
	waitFor(t, func() bool { return dropped(s.UDPTotals()) == n })
	tot := s.UDPTotals()
	if tot.Replies["success"] != 1 || tot.Replies["error_420"] != 0 || tot.Replies["error_400"] != 0 || tot.Received != n+1 {
		t.Errorf("received %d, replies %v", tot.Received, tot.Replies)
	}
}

func TestUDPRateLimit(t *testing.T) {
	// One socket: its port's burst is a tenth of the address's, 3.
	s := startServer(t, Config{Addrs: []netip.Addr{lo1}, NoTCP: true, Workers: 1, RateLimit: 0.001, RateBurst: 30})
	c := udpClient(t, lo1)
	var reqs [][]byte
	for i := 0; i < 6; i++ {
		req := buildReq(t)
		reqs = append(reqs, req)
		if _, err := c.WriteToUDPAddrPort(req, s.Endpoints()[0]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		recvReply(t, c, reqs[i])
	}
	waitFor(t, func() bool {
		tot := s.UDPTotals()
		return tot.Replies["success"]+tot.Drops["rate_limited"] == 6
	})
	if tot := s.UDPTotals(); tot.Replies["success"] != 3 || tot.Drops["rate_limited"] != 3 {
		t.Errorf("replies %v drops %v", tot.Replies, tot.Drops)
	}
}

// waitFor polls cond; it synchronises with the server's counters instead
// of sleeping for a guessed time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

func tcpExchange(t *testing.T, c net.Conn, req []byte) []byte {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	return readTCPMessage(t, c)
}

func readTCPMessage(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body := make([]byte, int(hdr[2])<<8|int(hdr[3]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func TestTCP(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}})
	eps := s.Endpoints()
	for local, ep := range eps {
		c, err := net.Dial("tcp", ep.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		me := c.LocalAddr().(*net.TCPAddr).AddrPort()
		v := viewPion(t, decodePion(t, tcpExchange(t, c, buildReq(t))))
		if v.xor != me || v.origin != ep || v.other != eps[local^3] {
			t.Errorf("tcp %v: %+v", ep, v)
		}
		// Two pipelined requests in one write get two answers, in order.
		a, b := buildReq(t), buildReq(t, changeReq(0))
		if _, err := c.Write(append(append([]byte(nil), a...), b...)); err != nil {
			t.Fatal(err)
		}
		for _, want := range [][]byte{a, b} {
			if got := readTCPMessage(t, c); string(got[8:20]) != string(want[8:20]) {
				t.Error("pipelined answers out of order")
			}
		}
		code, unknown := errorOf(t, tcpExchange(t, c, buildReq(t, changeReq(changeIP))))
		if code != 420 || len(unknown) != 1 || unknown[0] != stun.AttrChangeRequest {
			t.Errorf("CHANGE-REQUEST over TCP: %d %v", code, unknown)
		}
	}
	// Garbage closes the connection without a byte in reply.
	c, err := net.Dial("tcp", eps[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The server closes with our unread bytes pending, so EOF or a reset.
	if n, err := c.Read(make([]byte, 100)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("garbage over TCP: read %d, %v; want the connection closed", n, err)
	}
}

func TestTCPConnectionLimit(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1}, MaxTCPConnsPerIP: 2})
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.Endpoints()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tcpExchange(t, c, buildReq(t)) // admitted and answered
		conns = append(conns, c)
	}
	c, err := net.Dial("tcp", s.Endpoints()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(buildReq(t))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _ := c.Read(make([]byte, 100)); n != 0 {
		t.Error("third connection from one address was served")
	}
	waitFor(t, func() bool { return s.tcpRejected.Load() == 1 })
}

func TestBindErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.LocalAddr().(*net.UDPAddr).Port
	tests := []struct {
		name string
		cfg  Config
		is   error
		msg  string
	}{
		{"port in use", Config{Addrs: []netip.Addr{lo1}, Port: busyPort, AltPort: busyPort + 1}, syscall.EADDRINUSE, "port already in use"},
		{"address not on this host", Config{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Port: 3478, AltPort: 3479}, syscall.EADDRNOTAVAIL, "address not assigned"},
		{"alternate equals primary", Config{Addrs: []netip.Addr{lo1, lo1}, Port: 3478, AltPort: 3479}, ErrSameAddress, "equals the primary"},
		{"alt port equals port", Config{Addrs: []netip.Addr{lo1}, Port: 3478, AltPort: 3478}, nil, "alternate port equals"},
		{"wildcard", Config{Addrs: []netip.Addr{netip.IPv4Unspecified()}}, nil, "specific address"},
		{"too many workers", Config{Addrs: []netip.Addr{lo1}, Workers: 100000}, nil, "at most 256 workers"},
		{"three addresses", Config{Addrs: []netip.Addr{lo1, lo2, netip.MustParseAddr("127.0.0.3")}}, nil, "at most two"},
		{"metrics address in use", Config{Addrs: []netip.Addr{lo1}, MetricsAddr: "127.0.0.1:" + fmt.Sprint(tcpBusy(t))}, syscall.EADDRINUSE, "metrics"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Listen(context.Background(), tc.cfg)
			if err == nil {
				s.closeSockets()
				t.Fatal("Listen succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want %v / %q", err, tc.is, tc.msg)
			}
		})
	}
}

func tcpBusy(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestShutdownReleasesPorts checks that Serve returns on cancel and that
// every port can be bound again afterwards.
func TestShutdownReleasesPorts(t *testing.T) {
	s, stop := testutil.StartServer(t, Listen, Config{Addrs: []netip.Addr{lo1, lo2}, MetricsAddr: "127.0.0.1:0"})
	c, err := net.Dial("tcp", s.Endpoints()[0].String()) // an open connection must not block shutdown
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tcpExchange(t, c, buildReq(t))
	stop() // fails the test if Serve returned an error
	if t.Failed() {
		t.FailNow()
	}
	s2, err := Listen(context.Background(), Config{Addrs: []netip.Addr{lo1, lo2}, Port: int(s.Endpoints()[0].Port()), AltPort: int(s.Endpoints()[1].Port())})
	if err != nil {
		t.Fatalf("ports not released: %v", err)
	}
	s2.closeSockets()
}

func TestMetrics(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, MetricsAddr: "127.0.0.1:0"})
	c := udpClient(t, lo1)
	exchange(t, c, s.Endpoints()[0], buildReq(t))
	exchange(t, c, s.Endpoints()[0], buildReq(t, rawAttr(0x7777, nil)))
	_, _ = c.WriteToUDPAddrPort([]byte("garbage"), s.Endpoints()[0])
	waitFor(t, func() bool {
		tot := s.UDPTotals()
		return tot.Received == 3 && tot.Drops["not_stun"] == 1 && tot.Replies["error_420"] == 1
	})
	resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(k, "#") {
			got[k] = v
		}
	}
	for k, v := range map[string]string{
		`natcheck_serve_requests_received_total{transport="udp"}`:                   "3",
		`natcheck_serve_responses_sent_total{transport="udp",kind="success"}`:       "1",
		`natcheck_serve_responses_sent_total{transport="udp",kind="error_420"}`:     "1",
		`natcheck_serve_requests_dropped_total{transport="udp",reason="not_stun"}`:  "1",
		`natcheck_serve_requests_dropped_total{transport="tcp",reason="malformed"}`: "0",
		`natcheck_serve_tcp_connections_open`:                                       "0",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics")
	}
}

// serveUntilFailure runs Serve with a context nobody cancels, breaks the
// server with breakIt, and returns Serve's error: Serve must stop by
// itself and say why.
func serveUntilFailure(t *testing.T, cfg Config, breakIt func(*Server)) (*Server, error) {
	t.Helper()
	var logs testutil.SyncBuffer
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(&logs, format+"\n", args...) }
	s, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "serving STUN") })
	breakIt(s)
	select {
	case err := <-done:
		if !strings.Contains(logs.String(), "shutting down: ") {
			t.Errorf("log %q does not say why the server stopped", logs.String())
		}
		return s, err
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("Serve still running 10s after its socket failed")
		return nil, nil
	}
}

func TestServeReturnsFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		breakIt func(*Server)
		want    string
	}{
		{"metrics listener", Config{Addrs: []netip.Addr{lo1}, NoTCP: true, MetricsAddr: "127.0.0.1:0"},
			func(s *Server) { s.metricsLn.Close() }, "metrics server on 127.0.0.1:"},
		{"udp socket", Config{Addrs: []netip.Addr{lo1}, NoTCP: true},
			func(s *Server) { s.fams[0].udp[0][1].Close() }, "udp socket 127.0.0.1:"},
		{"udp socket, no batching", Config{Addrs: []netip.Addr{lo1}, NoTCP: true, Batch: 1},
			func(s *Server) { s.fams[0].udp[0][0].Close() }, "udp socket 127.0.0.1:"},
		{"tcp listener", Config{Addrs: []netip.Addr{lo1}},
			func(s *Server) { s.fams[0].tcp[0].Close() }, "tcp socket 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := serveUntilFailure(t, tc.cfg, tc.breakIt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve returned %v, want an error containing %q", err, tc.want)
			}
			// Serve shut everything down on its way out: the ports are free.
			eps := s.Endpoints()
			s2, err := Listen(context.Background(), Config{Addrs: []netip.Addr{lo1}, Port: int(eps[0].Port()), AltPort: int(eps[1].Port()), NoTCP: tc.cfg.NoTCP})
			if err != nil {
				t.Fatalf("ports not released after the failure: %v", err)
			}
			s2.closeSockets()
		})
	}
}

func TestServeOnce(t *testing.T) {
	s, stop := testutil.StartServer(t, Listen, Config{Addrs: []netip.Addr{lo1}, NoTCP: true})
	stop()
	if err := s.Serve(context.Background()); !errors.Is(err, ErrServed) {
		t.Errorf("second Serve returned %v, want ErrServed", err)
	}
}

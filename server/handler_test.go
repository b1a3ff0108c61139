package server

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

var testFamily = family{
	ep: [4]netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.10:3478"),
		netip.MustParseAddrPort("203.0.113.10:3479"),
		netip.MustParseAddrPort("203.0.113.11:3478"),
		netip.MustParseAddrPort("203.0.113.11:3479"),
	},
	twoIP: true,
}

var singleFamily = family{ep: [4]netip.AddrPort{testFamily.ep[0], testFamily.ep[1]}}

var client = netip.MustParseAddrPort("198.51.100.7:40000")

func TestHandleChangeRequest(t *testing.T) {
	h := &handler{fam: &testFamily, software: "natcheck"}
	// RFC 5780 table 1, from every endpoint the request can arrive on.
	for local := 0; local < 4; local++ {
		for _, flags := range []byte{0, changePort, changeIP, changeIP | changePort} {
			out := make([]byte, maxResponse)
			req := buildReq(t, changeReq(flags))
			rep := h.handle(req, client, local, false, 1, out)
			wantFrom := local
			if flags&changeIP != 0 {
				wantFrom ^= epAltIP
			}
			if flags&changePort != 0 {
				wantFrom ^= epAltPort
			}
			if rep.n == 0 || rep.kind != replySuccess || rep.from != wantFrom || rep.to != client {
				t.Fatalf("local %d flags %#x: %+v, want from %d", local, flags, rep, wantFrom)
			}
			v := viewPion(t, decodePion(t, out[:rep.n]))
			if v.origin != testFamily.ep[wantFrom] {
				t.Errorf("RESPONSE-ORIGIN %v, want %v", v.origin, testFamily.ep[wantFrom])
			}
			if want := testFamily.ep[local^3]; v.other != want {
				t.Errorf("OTHER-ADDRESS %v, want %v (Ca:Cp of the receiving endpoint)", v.other, want)
			}
			if v.xor != client || v.mapped != client {
				t.Errorf("mapped %v / %v", v.xor, v.mapped)
			}
		}
	}
}

// errorOf decodes an error response and returns its code and unknown list.
func errorOf(t *testing.T, b []byte) (int, []stun.AttrType) {
	t.Helper()
	m := decodePion(t, b)
	if m.Type != stun.BindingError {
		t.Fatalf("type %v, want error response", m.Type)
	}
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(m); err != nil {
		t.Fatal(err)
	}
	var ua stun.UnknownAttributes
	_ = ua.GetFrom(m)
	return int(ec.Code), ua
}

func TestHandleErrors(t *testing.T) {
	tests := []struct {
		name    string
		fam     *family
		req     []byte
		stream  bool
		code    int
		unknown []stun.AttrType
	}{
		{"change ip on single address", &singleFamily, buildReq(t, changeReq(changeIP)), false, 420, []stun.AttrType{stun.AttrChangeRequest}},
		{"change both on single address", &singleFamily, buildReq(t, changeReq(changeIP|changePort)), false, 420, []stun.AttrType{stun.AttrChangeRequest}},
		{"change on tcp", &testFamily, buildReq(t, changeReq(changePort)), true, 420, []stun.AttrType{stun.AttrChangeRequest}},
		{"response-port on tcp", &testFamily, buildReq(t, rawAttr(attrResponsePort, []byte{1, 2})), true, 420, []stun.AttrType{attrResponsePort}},
		{"unknown attribute", &testFamily, buildReq(t, rawAttr(0x7777, []byte{1})), false, 420, []stun.AttrType{0x7777}},
		{"response-address (RFC 3489) unsupported", &testFamily, buildReq(t, rawAttr(attrResponseAddress, make([]byte, 8))), false, 420, []stun.AttrType{attrResponseAddress}},
		{"padding with response-port", &testFamily, buildReq(t, rawAttr(attrResponsePort, []byte{1, 2}), rawAttr(attrPadding, make([]byte, 8))), false, 400, nil},
		{"response-port zero", &testFamily, buildReq(t, rawAttr(attrResponsePort, []byte{0, 0})), false, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &handler{fam: tc.fam}
			out := make([]byte, maxResponse)
			rep := h.handle(tc.req, client, 1, tc.stream, 1, out)
			if rep.n == 0 || rep.from != 1 || rep.to != client {
				t.Fatalf("%+v: an error must come from where the request arrived", rep)
			}
			if rep.n > amplification*len(tc.req) {
				t.Errorf("error response %d bytes for a %d-byte request", rep.n, len(tc.req))
			}
			code, unknown := errorOf(t, out[:rep.n])
			if code != tc.code || len(unknown) != len(tc.unknown) || len(unknown) > 0 && unknown[0] != tc.unknown[0] {
				t.Errorf("got %d %v, want %d %v", code, unknown, tc.code, tc.unknown)
			}
		})
	}
}

func TestHandleSingleAddressChangePort(t *testing.T) {
	h := &handler{fam: &singleFamily}
	out := make([]byte, maxResponse)
	rep := h.handle(buildReq(t, changeReq(changePort)), client, 0, false, 1, out)
	if rep.kind != replySuccess || rep.from != 1 {
		t.Fatalf("%+v", rep)
	}
	if v := viewPion(t, decodePion(t, out[:rep.n])); v.other.IsValid() {
		t.Errorf("OTHER-ADDRESS %v sent without a second IP", v.other)
	}
}

func TestHandleResponsePort(t *testing.T) {
	h := &handler{fam: &testFamily}
	for _, v := range [][]byte{{0x9c, 0x41}, {0x9c, 0x41, 0, 0}} {
		out := make([]byte, maxResponse)
		rep := h.handle(buildReq(t, rawAttr(attrResponsePort, v)), client, 0, false, 1, out)
		if want := netip.AddrPortFrom(client.Addr(), 40001); rep.to != want {
			t.Errorf("len %d: sent to %v, want %v", len(v), rep.to, want)
		}
	}
}

func TestHandleRateLimit(t *testing.T) {
	// Address: 4/s, burst 20; so each port: 1/s, burst 2.
	h := &handler{fam: &testFamily, lim: newLimiter(4, 20)}
	out := make([]byte, maxResponse)
	req := buildReq(t)
	var answered int
	for i := 0; i < 5; i++ {
		if rep := h.handle(req, client, 0, false, 1e9, out); rep.n > 0 {
			answered++
		} else if rep.drop != dropRateLimited {
			t.Fatalf("drop %v", rep.drop)
		}
	}
	if answered != 2 {
		t.Errorf("one port: answered %d of 5 with a port burst of 2", answered)
	}
	// One second later one more token has arrived; another source is unaffected.
	if rep := h.handle(req, client, 0, false, 2e9, out); rep.n == 0 {
		t.Error("no token after one second at 1/s")
	}
	if rep := h.handle(req, netip.MustParseAddrPort("198.51.100.8:1"), 0, false, 2e9, out); rep.n == 0 {
		t.Error("another source was limited")
	}
}

// TestLimiterAddressTotal: the ports of one address share the address's
// bucket; CHANGE-REQUESTs may overdraw it by half the burst, plain
// requests and TCP may not, and TCP waits while UDP is being dropped.
func TestLimiterAddressTotal(t *testing.T) {
	l := newLimiter(4, 20) // ports: 1/s, burst 2
	port := uint16(1000)
	next := func() netip.AddrPort { port++; return netip.AddrPortFrom(client.Addr(), port) }
	n := 0
	for i := 0; i < 30; i++ {
		if l.allow(next(), limitPlain, 1e9) {
			n++
		}
	}
	if n != 20 {
		t.Errorf("30 ports, one request each: %d answered, want the address burst 20", n)
	}
	if l.allow(next(), limitTCP, 1e9) {
		t.Error("TCP answered while the address's bucket is empty")
	}
	n = 0
	for i := 0; i < 30; i++ {
		if l.allow(next(), limitChange, 1e9) {
			n++
		}
	}
	if n != 10 {
		t.Errorf("change requests after the bucket emptied: %d answered, want the overdraft of 10", n)
	}
	// 20 s later the bucket is full again, but TCP waits until no UDP
	// request was dropped for tcpHoldNs.
	if !l.allow(next(), limitPlain, 21e9) {
		t.Error("refilled bucket refused a plain request")
	}
	if !l.allow(next(), limitTCP, 21e9) {
		t.Error("TCP refused long after the last UDP drop")
	}
	for l.allow(next(), limitPlain, 22e9) {
	}
	if l.allow(next(), limitTCP, 22e9+tcpHoldNs/2) {
		t.Error("TCP answered within tcpHoldNs of a dropped UDP request")
	}
	if !l.allow(next(), limitTCP, 22e9+tcpHoldNs+1) {
		t.Error("TCP refused after tcpHoldNs")
	}
	if !l.allow(netip.MustParseAddrPort("198.51.100.8:1"), limitPlain, 22e9) {
		t.Error("another address was limited")
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1, 1)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 4*limiterEntries; i++ {
		l.allow(netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(i >> 16), byte(i >> 8), byte(i)}), 1), limitPlain, int64(i+1))
	}
	if n := l.size(); n > limiterEntries || n < limiterEntries/2 {
		t.Errorf("limiter holds %d entries, table has %d", n, limiterEntries)
	}
	if n := l.flow.size(); n > limiterEntries || n < limiterEntries/2 {
		t.Errorf("port table holds %d entries, table has %d", n, limiterEntries)
	}
	// IPv6 sources in one /64 share a bucket.
	a := netip.MustParseAddrPort("[2001:db8::1]:1")
	b := netip.MustParseAddrPort("[2001:db8::ffff:2]:1")
	if !l.allow(a, limitPlain, 1e18) || l.allow(b, limitPlain, 1e18) {
		t.Error("addresses of one /64 did not share a bucket")
	}
}

// TestHandleZeroAlloc is the unit-test form of BenchmarkHandle: the
// request->response path must not allocate.
func TestHandleZeroAlloc(t *testing.T) {
	lim := newLimiter(1e9, 1e9)
	two := &handler{fam: &testFamily, lim: lim, software: "natcheck"}
	one := &handler{fam: &singleFamily, lim: lim, software: "natcheck"}
	out := make([]byte, maxResponse)
	for _, tc := range []struct {
		name   string
		h      *handler
		req    []byte
		stream bool
	}{
		{"plain", two, buildReq(t), false},
		{"change and fingerprint", two, buildReq(t, changeReq(6), stun.Fingerprint), false},
		{"padding", two, buildReq(t, rawAttr(attrPadding, make([]byte, 500))), false},
		{"420 unknown", two, buildReq(t, rawAttr(0x7777, nil)), false},
		{"420 change ip on one address", one, buildReq(t, changeReq(changeIP)), false},
		{"420 change over tcp", two, buildReq(t, changeReq(changePort)), true},
		{"400", two, buildReq(t, rawAttr(attrResponsePort, []byte{0, 0})), false},
		{"rfc3489", two, legacyReq(), false},
		{"garbage", two, []byte("GET / HTTP/1.1\r\n\r\n"), false},
	} {
		allocs := testing.AllocsPerRun(100, func() { tc.h.handle(tc.req, client, 0, tc.stream, 1, out) })
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request", tc.name, allocs)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	h := &handler{fam: &testFamily, lim: newLimiter(1e12, 1e9), software: "natcheck"}
	out := make([]byte, maxResponse)
	for _, bc := range []struct {
		name string
		req  []byte
	}{
		{"plain", buildReq(b)},
		{"change+fingerprint", buildReq(b, changeReq(6), stun.Fingerprint)},
		{"rfc3489", legacyReq(tlv(attrChangeRequest, 0, 0, 0, 0))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.req)))
			for i := 0; b.Loop(); i++ {
				if rep := h.handle(bc.req, client, 0, false, int64(i), out); rep.n == 0 {
					b.Fatal("dropped")
				}
			}
		})
	}
}

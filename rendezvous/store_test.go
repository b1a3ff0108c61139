package rendezvous

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var (
	srcA = netip.MustParseAddrPort("198.51.100.1:40000")
	srcB = netip.MustParseAddrPort("203.0.113.7:50000")
	srcC = netip.MustParseAddrPort("192.0.2.9:60000")
)

// peer drives a Store the way a client does, cookie included.
type peer struct {
	t      *testing.T
	s      *Store
	src    netip.AddrPort
	role   Role
	lookup LookupKey
	cookie [cookieSize]byte
	blob   []byte
}

func newPeer(t *testing.T, s *Store, src netip.AddrPort, role Role, lookup LookupKey, blobLen int) *peer {
	b := bytes.Repeat([]byte{byte(role) + 1}, blobLen)
	return &peer{t: t, s: s, src: src, role: role, lookup: lookup, blob: b}
}

// send builds a request, runs it at now, and returns the raw reply.
func (p *peer) send(op, flags uint8, pad int, now int64) (reply, int, int) {
	p.t.Helper()
	r := request{op: op, role: p.role, flags: flags, lookup: p.lookup, cookie: p.cookie, txid: [8]byte{1, 2, 3}}
	if op == opPut {
		r.blob = p.blob
	}
	pkt := appendRequest(nil, &r, pad)
	out := make([]byte, MaxMessage)
	n := p.s.Handle(pkt, p.src, now, out)
	if n == 0 {
		p.t.Fatalf("no answer to op %d", op)
	}
	var rep reply
	if !parseReply(out[:n], &rep) {
		p.t.Fatalf("unparsable reply %x", out[:n])
	}
	if rep.txid != r.txid {
		p.t.Fatal("txid not echoed")
	}
	return rep, n, len(pkt)
}

// do sends with a cookie (fetching one first when needed) and returns the
// status.
func (p *peer) do(op, flags uint8, now int64) (uint8, []byte) {
	p.t.Helper()
	rep, _, _ := p.send(op, flags, minPadded, now)
	if rep.status == statusCookie {
		p.cookie = rep.cookie
		rep, _, _ = p.send(op, flags, minPadded, now)
	}
	return rep.status, rep.blob
}

const sec = int64(time.Second)

func TestStoreTwoPeersAndThirdRefused(t *testing.T) {
	s := NewStore(StoreConfig{})
	k := LookupKey{9}
	a := newPeer(t, s, srcA, Creator, k, 100)
	b := newPeer(t, s, srcB, Joiner, k, 200)
	now := 10 * sec
	if st, _ := b.do(opPut, 0, now); st != statusUnknown {
		t.Fatalf("joiner before creator: %d", st)
	}
	if st, _ := a.do(opPut, 0, now); st != statusWaiting {
		t.Fatalf("creator put: %d", st)
	}
	if st, _ := a.do(opPut, 0, now); st != statusWaiting {
		t.Fatalf("creator retransmission: %d", st)
	}
	if st, _ := a.do(opGet, 0, now); st != statusWaiting {
		t.Fatalf("creator get: %d", st)
	}
	st, blob := b.do(opPut, 0, now)
	if st != statusPeer || !bytes.Equal(blob, a.blob) {
		t.Fatalf("joiner put: %d, %d bytes", st, len(blob))
	}
	st, blob = a.do(opGet, 0, now)
	if st != statusPeer || !bytes.Equal(blob, b.blob) {
		t.Fatalf("creator get: %d", st)
	}
	if st, _ := a.do(opGet, flagHavePeer, now); st != statusPresent {
		t.Fatalf("get with have-peer: %d", st)
	}
	// A third peer, as joiner or creator, with its own blob: refused.
	for _, role := range []Role{Joiner, Creator} {
		c := newPeer(t, s, srcC, role, k, 150)
		if st, _ := c.do(opPut, 0, now); st != statusTaken {
			t.Fatalf("third peer as %v: %d", role, st)
		}
	}
	// A reader that never stored a blob cannot read (as the joiner's slot
	// is taken, try a fresh code's joiner).
	if st, _ := newPeer(t, s, srcC, Joiner, LookupKey{10}, 1).do(opGet, 0, now); st != statusUnknown {
		t.Fatalf("get on unknown code: %d", st)
	}
	stats := s.Stats(now)
	if stats.Codes != 1 || stats.Blobs != 2 || stats.Bytes != 300 || stats.Stored != 2 || stats.Refused[RefusedThirdPeer] != 2 {
		t.Fatalf("stats %+v", stats)
	}
	// Leave: the other learns it; both gone: the code is forgotten.
	if st, _ := b.do(opLeave, 0, now); st != statusAck {
		t.Fatalf("leave: %d", st)
	}
	if st, _ := a.do(opGet, flagHavePeer, now); st != statusLeft {
		t.Fatalf("after joiner left: %d", st)
	}
	if stats := s.Stats(now); stats.Blobs != 1 || stats.Codes != 1 {
		t.Fatalf("leaver's blob kept: %+v", stats)
	}
	a.do(opLeave, 0, now)
	if stats := s.Stats(now); stats.Codes != 0 || stats.Blobs != 0 || stats.Bytes != 0 || stats.Left != 2 {
		t.Fatalf("after both left: %+v", stats)
	}
}

func TestStoreCreatorLeavesFirst(t *testing.T) {
	s := NewStore(StoreConfig{})
	a := newPeer(t, s, srcA, Creator, LookupKey{1}, 50)
	a.do(opPut, 0, sec)
	a.do(opLeave, 0, sec)
	if st, _ := newPeer(t, s, srcB, Joiner, LookupKey{1}, 50).do(opPut, 0, sec); st != statusLeft {
		t.Fatalf("late joiner: %d", st)
	}
}

func TestStoreExpiry(t *testing.T) {
	s := NewStore(StoreConfig{TTL: 10 * time.Second})
	a := newPeer(t, s, srcA, Creator, LookupKey{1}, 50)
	a.do(opPut, 0, sec)
	other := newPeer(t, s, srcA, Creator, LookupKey{2}, 50)
	other.do(opPut, 0, 5*sec)
	if st, _ := a.do(opGet, 0, 10*sec); st != statusWaiting {
		t.Fatalf("before TTL: %d", st)
	}
	if st, _ := a.do(opGet, 0, 11*sec); st != statusUnknown {
		t.Fatalf("after TTL: %d", st)
	}
	if st := s.Stats(16 * sec); st.Codes != 0 || st.Expired != 2 || st.Blobs != 0 {
		t.Fatalf("sweep: %+v", st)
	}
	if NewStore(StoreConfig{TTL: time.Hour}).TTL() != MaxTTL {
		t.Fatal("TTL not capped")
	}
}

func TestStoreBounds(t *testing.T) {
	s := NewStore(StoreConfig{MaxCodes: 3, MaxPerSource: 2})
	for i, want := range []uint8{statusWaiting, statusWaiting, statusFull} {
		if st, _ := newPeer(t, s, srcA, Creator, LookupKey{byte(i)}, 40).do(opPut, 0, sec); st != want {
			t.Fatalf("code %d from one source: %d, want %d", i, st, want)
		}
	}
	// Same /64 over IPv6, other ports and hosts of it: one source.
	v6 := []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2"), netip.MustParseAddrPort("[2001:db8::3]:3")}
	for i, want := range []uint8{statusWaiting, statusFull, statusFull} {
		if st, _ := newPeer(t, s, v6[i], Creator, LookupKey{byte(10 + i)}, 40).do(opPut, 0, sec); st != want {
			t.Fatalf("v6 code %d: %d, want %d", i, st, want)
		}
	}
	st := s.Stats(sec)
	if st.Codes != 3 || st.Refused[RefusedSourceLimit] != 1 || st.Refused[RefusedTableFull] != 2 {
		t.Fatalf("%+v", st)
	}
}

func TestStoreCookie(t *testing.T) {
	s := NewStore(StoreConfig{})
	a := newPeer(t, s, srcA, Creator, LookupKey{1}, 40)
	rep, n, reqLen := a.send(opPut, 0, 0, sec)
	if rep.status != statusCookie || n > reqLen {
		t.Fatalf("first request: status %d, %d-byte reply to %d", rep.status, n, reqLen)
	}
	if st := s.Stats(sec); st.Codes != 0 {
		t.Fatal("state kept for a request without cookie")
	}
	// Another source (a spoofer replaying the cookie) is refused a store.
	c := newPeer(t, s, srcC, Creator, LookupKey{1}, 40)
	c.cookie = rep.cookie
	if rep2, _, _ := c.send(opPut, 0, 0, sec); rep2.status != statusCookie {
		t.Fatalf("cookie of another source accepted: %d", rep2.status)
	}
	a.cookie = rep.cookie
	if rep2, _, _ := a.send(opPut, 0, 0, sec); rep2.status != statusWaiting {
		t.Fatalf("with cookie: %d", rep2.status)
	}
	// Valid in its epoch and the next, then replaced.
	if rep2, _, _ := a.send(opGet, 0, 0, sec+int64(cookieEpoch)); rep2.status != statusWaiting {
		t.Fatalf("next epoch: %d", rep2.status)
	}
	if rep2, _, _ := a.send(opGet, 0, 0, sec+2*int64(cookieEpoch)); rep2.status != statusCookie {
		t.Fatalf("stale cookie: %d", rep2.status)
	}
	// A forged cookie with a current epoch.
	var forged [cookieSize]byte
	binary.BigEndian.PutUint32(forged[:], uint32(sec/int64(cookieEpoch)))
	a.cookie = forged
	if rep2, _, _ := a.send(opGet, 0, 0, sec); rep2.status != statusCookie {
		t.Fatalf("forged cookie: %d", rep2.status)
	}
}

// TestStoreAmplification: no reply exceeds 4 times its request; an
// unpadded poll for a large blob is told to pad instead.
func TestStoreAmplification(t *testing.T) {
	s := NewStore(StoreConfig{})
	k := LookupKey{3}
	a := newPeer(t, s, srcA, Creator, k, 30)
	a.do(opPut, 0, sec)
	b := newPeer(t, s, srcB, Joiner, k, MaxBlob+Overhead)
	if st, blob := b.do(opPut, 0, sec); st != statusPeer || len(blob) != 30 {
		t.Fatalf("joiner: %d", st)
	}
	// The creator's bare get (50 bytes) cannot draw a 2094-byte reply.
	rep, n, reqLen := a.send(opGet, 0, 0, sec)
	if rep.status != statusPad || n > 4*reqLen || int(rep.arg)*4 < replyHeader+2+len(b.blob) {
		t.Fatalf("bare get: status %d, %d bytes for %d, pad to %d", rep.status, n, reqLen, rep.arg)
	}
	rep, n, reqLen = a.send(opGet, 0, int(rep.arg), sec)
	if rep.status != statusPeer || n > 4*reqLen || len(rep.blob) != len(b.blob) {
		t.Fatalf("padded get: status %d, %d bytes for %d", rep.status, n, reqLen)
	}
	rep, n, reqLen = a.send(opGet, 0, minPadded, sec)
	if rep.status != statusPeer || n > 4*reqLen {
		t.Fatalf("client-padded get: %d bytes for %d", n, reqLen)
	}
}

func TestStoreMalformedNotAnswered(t *testing.T) {
	s := NewStore(StoreConfig{})
	good := appendRequest(nil, &request{op: opPut, blob: make([]byte, 40)}, 0)
	out := make([]byte, MaxMessage)
	if s.Handle(good, srcA, sec, out) == 0 {
		t.Fatal("good request unanswered")
	}
	bad := map[string][]byte{
		"short":       good[:reqHeader-1],
		"version":     append(append([]byte{}, good[:4]...), append([]byte{2}, good[5:]...)...),
		"op":          patch(good, 5, 9),
		"role":        patch(good, 6, 2),
		"flags":       patch(good, 7, 0x80),
		"blob length": patch(good, 49, 200),
		"too small":   patch(patch(good, 48, 0), 49, Overhead-1),
		"too large":   append(bytes.Clone(good), make([]byte, MaxMessage)...),
		"get w/ blob": patch(good, 5, opGet),
		"magic":       patch(good, 0, 0x17),
	}
	for name, b := range bad {
		if n := s.Handle(b, srcA, sec, out); n != 0 {
			t.Errorf("%s: answered %d bytes", name, n)
		}
		if n := Disabled(b, out); n != 0 {
			t.Errorf("%s: disabled answered", name)
		}
	}
	if n := Disabled(good, out); n != replyHeader || out[5] != statusDisabled {
		t.Fatalf("disabled reply %d bytes", n)
	}
}

func patch(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// FuzzHandle: whatever arrives, Handle does not panic, answers only
// well-formed requests, and never replies with more than 4 times the
// request.
func FuzzHandle(f *testing.F) {
	f.Add(appendRequest(nil, &request{op: opPut, blob: make([]byte, 40)}, 0))
	f.Add(appendRequest(nil, &request{op: opGet, role: Joiner, flags: flagHavePeer}, minPadded))
	f.Add(appendRequest(nil, &request{op: opLeave}, 0))
	f.Add([]byte{0xD7, 'n', 'r', 'v', 1})
	s := NewStore(StoreConfig{MaxCodes: 64})
	out := make([]byte, MaxMessage)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var r request
		ok := parseRequest(pkt, &r)
		// Run it twice: the second time with the cookie the first got.
		for i := 0; i < 2; i++ {
			n := s.Handle(pkt, srcA, sec, out)
			if !ok && n != 0 {
				t.Fatal("malformed request answered")
			}
			if ok && (n == 0 || n > 4*len(pkt)) {
				t.Fatalf("%d-byte reply to %d bytes", n, len(pkt))
			}
			var rep reply
			if n > 0 && !parseReply(out[:n], &rep) {
				t.Fatalf("unparsable reply %x", out[:n])
			}
			if n > 0 && rep.status == statusCookie && len(pkt) >= 32 {
				pkt = bytes.Clone(pkt)
				copy(pkt[16:32], rep.cookie[:])
			}
		}
	})
}

// FuzzStream: a TCP stream of any bytes: ReadRequest never panics nor
// reads past a request, and accepts only what parseRequest accepts; every
// reply HandleStream gives to it reads back whole through readReply, and
// readReply on the raw bytes never panics nor claims more than it read.
func FuzzStream(f *testing.F) {
	f.Add(appendRequest(nil, &request{op: opPut, blob: make([]byte, 40)}, 0))
	f.Add(appendRequest(nil, &request{op: opGet, role: Joiner}, 0))
	f.Add([]byte{0xD7, 'n', 'r', 'v', 1, 3, 0, 0})
	s := NewStore(StoreConfig{MaxCodes: 64})
	f.Fuzz(func(t *testing.T, stream []byte) {
		buf := make([]byte, MaxMessage)
		r := bytes.NewReader(stream)
		n, ok := ReadRequest(r, buf, 0)
		if ok {
			var req request
			if !parseRequest(buf[:n], &req) || !bytes.Equal(buf[:n], stream[:n]) {
				t.Fatalf("accepted %x", buf[:n])
			}
			out := make([]byte, MaxMessage)
			m := s.HandleStream(buf[:n], srcA, sec, out)
			if m == 0 {
				t.Fatal("a well-formed request over TCP got no answer")
			}
			back := make([]byte, MaxMessage)
			k, err := readReply(bytes.NewReader(out[:m]), back)
			var rep reply
			if err != nil || k != m || !parseReply(back[:k], &rep) || rep.status == statusCookie || rep.status == statusPad {
				t.Fatalf("reply %x read back as %d bytes, %v (status %d)", out[:m], k, err, rep.status)
			}
		}
		k, err := readReply(bytes.NewReader(stream), make([]byte, MaxMessage))
		if err == nil && k > len(stream) {
			t.Fatalf("readReply claims %d bytes of %d", k, len(stream))
		}
	})
}

package server

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// RFC 5769 test vectors (sections 2.1, 2.2, 2.3).
var (
	rfc5769Request = []byte("\x00\x01\x00\x58\x21\x12\xa4\x42\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae" +
		"\x80\x22\x00\x10STUN test client" +
		"\x00\x24\x00\x04\x6e\x00\x01\xff" +
		"\x80\x29\x00\x08\x93\x2f\xf9\xb1\x51\x26\x3b\x36" +
		"\x00\x06\x00\x09\x65\x76\x74\x6a\x3a\x68\x36\x76\x59\x20\x20\x20" +
		"\x00\x08\x00\x14\x9a\xea\xa7\x0c\xbf\xd8\xcb\x56\x78\x1e\xf2\xb5\xb2\xd3\xf2\x49\xc1\xb5\x71\xa2" +
		"\x80\x28\x00\x04\xe5\x7a\x3b\xcf")
	rfc5769ResponseV4 = []byte("\x01\x01\x00\x3c\x21\x12\xa4\x42\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae" +
		"\x80\x22\x00\x0b\x74\x65\x73\x74\x20\x76\x65\x63\x74\x6f\x72\x20" +
		"\x00\x20\x00\x08\x00\x01\xa1\x47\xe1\x12\xa6\x43" +
		"\x00\x08\x00\x14\x2b\x91\xf5\x99\xfd\x9e\x90\xc3\x8c\x74\x89\xf9\x2a\xf9\xba\x53\xf0\x6b\xe7\xd7" +
		"\x80\x28\x00\x04\xc0\x7d\x4c\x96")
	rfc5769ResponseV6 = []byte("\x01\x01\x00\x48\x21\x12\xa4\x42\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae" +
		"\x80\x22\x00\x0b\x74\x65\x73\x74\x20\x76\x65\x63\x74\x6f\x72\x20" +
		"\x00\x20\x00\x14\x00\x02\xa1\x47\x01\x13\xa9\xfa\xa5\xd3\xf1\x79\xbc\x25\xf4\xb5\xbe\xd2\xb9\xd9" +
		"\x00\x08\x00\x14\xa3\x82\x95\x4e\x4b\xe6\x7b\xf1\x17\x84\xc9\x7c\x82\x92\xc2\x75\xbf\xe3\xed\x41" +
		"\x80\x28\x00\x04\xc8\xfb\x0b\x4c")
)

func TestParseRFC5769(t *testing.T) {
	var r request
	if d := parseRequest(rfc5769Request, &r); d != dropNone {
		t.Fatalf("RFC 5769 request dropped: %v", d)
	}
	if !r.fingerprint || r.nUnknown != 0 || r.legacy || r.hasChange || r.padLen != -1 {
		t.Errorf("parsed %+v", r)
	}
	bad := bytes.Clone(rfc5769Request)
	bad[len(bad)-1] ^= 1
	if d := parseRequest(bad, &r); d != dropFingerprint {
		t.Errorf("corrupted fingerprint: got %v, want %v", d, dropFingerprint)
	}
	for _, resp := range [][]byte{rfc5769ResponseV4, rfc5769ResponseV6} {
		if d := parseRequest(resp, &r); d != dropNotRequest {
			t.Errorf("response parsed as %v, want %v", d, dropNotRequest)
		}
	}
}

// TestXORMappedKnownAnswer builds the XOR-MAPPED-ADDRESS of RFC 5769's
// responses and compares the bytes.
func TestXORMappedKnownAnswer(t *testing.T) {
	r := request{padLen: -1}
	copy(r.id[:], rfc5769ResponseV4[4:20])
	for _, tc := range []struct {
		addr string
		want []byte
	}{
		{"192.0.2.1:32853", rfc5769ResponseV4[36:48]},
		{"[2001:db8:1234:5678:11:2233:4455:6677]:32853", rfc5769ResponseV6[36:60]},
	} {
		dst := make([]byte, 64)
		n := putAddr(dst, 0, attrXORMappedAddress, netip.MustParseAddrPort(tc.addr), true, &r)
		if !bytes.Equal(dst[:n], tc.want) {
			t.Errorf("%s: got % x, want % x", tc.addr, dst[:n], tc.want)
		}
	}
}

func buildReq(t testing.TB, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func changeReq(flags byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, flags}}
}

func rawAttr(t uint16, v []byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrType(t), Value: v}
}

// legacyReq is an RFC 3489 Binding request: no magic cookie.
func legacyReq(attrs ...[]byte) []byte {
	b := []byte{0, 1, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-20))
	return b
}

func tlv(t uint16, v ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, t)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseRequest(t *testing.T) {
	// A valid FINGERPRINT (its CRC covers the final length) followed by
	// another attribute.
	withAfterFP := buildReq(t)
	binary.BigEndian.PutUint16(withAfterFP[2:], 16)
	crc := crc32.ChecksumIEEE(withAfterFP) ^ fingerprintXOR
	withAfterFP = append(withAfterFP, tlv(attrFingerprint, binary.BigEndian.AppendUint32(nil, crc)...)...)
	withAfterFP = append(withAfterFP, tlv(0x8001, 1, 2, 3, 4)...)
	truncated := buildReq(t, changeReq(6))
	truncated = truncated[:len(truncated)-2]
	binary.BigEndian.PutUint16(truncated[2:], uint16(len(truncated)-20+2)) // claims 2 more
	overlong := buildReq(t, changeReq(6))
	binary.BigEndian.PutUint16(overlong[22:], 40) // attribute longer than the message
	indication := buildReq(t)
	indication[1] = 0x11
	response := buildReq(t)
	response[1] = 0x01
	response[0] = 0x01
	highBits := buildReq(t)
	highBits[0] |= 0x80

	tests := []struct {
		name string
		pkt  []byte
		drop dropReason
		want func(r *request) bool
	}{
		{"plain", buildReq(t), dropNone, func(r *request) bool { return !r.legacy && !r.hasChange && r.padLen == -1 }},
		{"change ip+port", buildReq(t, changeReq(6)), dropNone, func(r *request) bool { return r.hasChange && r.change == 6 }},
		{"change flags masked", buildReq(t, changeReq(0xff)), dropNone, func(r *request) bool { return r.change == 6 }},
		{"change first wins", buildReq(t, changeReq(2), changeReq(4)), dropNone, func(r *request) bool { return r.change == 2 }},
		{"response-port len 2 (stuntman)", buildReq(t, rawAttr(attrResponsePort, []byte{0x12, 0x34})), dropNone, func(r *request) bool { return r.hasRespPort && r.respPort == 0x1234 }},
		{"response-port len 4 (coturn)", buildReq(t, rawAttr(attrResponsePort, []byte{0x12, 0x34, 0, 0})), dropNone, func(r *request) bool { return r.hasRespPort && r.respPort == 0x1234 }},
		{"padding", buildReq(t, rawAttr(attrPadding, make([]byte, 101))), dropNone, func(r *request) bool { return r.padLen == 101 }},
		{"fingerprint", buildReq(t, changeReq(2), stun.Fingerprint), dropNone, func(r *request) bool { return r.fingerprint && r.change == 2 }},
		{"unknown required", buildReq(t, rawAttr(0x7777, []byte{1}), rawAttr(attrResponseAddress, make([]byte, 8))), dropNone, func(r *request) bool {
			return r.nUnknown == 2 && r.unknown[0] == 0x7777 && r.unknown[1] == attrResponseAddress
		}},
		{"unknown required listed once", buildReq(t, rawAttr(0x7777, nil), rawAttr(0x7777, nil)), dropNone, func(r *request) bool { return r.nUnknown == 1 }},
		{"unknown optional ignored", buildReq(t, rawAttr(0x8777, []byte{1, 2})), dropNone, func(r *request) bool { return r.nUnknown == 0 }},
		{"ice attributes understood", buildReq(t, stun.NewUsername("a:b"), rawAttr(attrPriority, []byte{1, 2, 3, 4}), rawAttr(attrUseCandidate, nil)), dropNone, func(r *request) bool { return r.nUnknown == 0 }},
		{"after integrity ignored", buildReq(t, rawAttr(attrMessageIntegrity, make([]byte, 20)), rawAttr(0x7777, nil), changeReq(6)), dropNone, func(r *request) bool { return r.nUnknown == 0 && !r.hasChange }},
		{"legacy", legacyReq(tlv(attrChangeRequest, 0, 0, 0, 4)), dropNone, func(r *request) bool { return r.legacy && r.change == changeIP && r.id[0] == 0xde }},
		{"too short", buildReq(t)[:19], dropNotSTUN, nil},
		{"length mismatch", append(buildReq(t), 0, 0, 0, 0), dropNotSTUN, nil},
		{"length not multiple of 4", append(buildReq(t), 0, 0), dropNotSTUN, nil},
		{"high bits set", highBits, dropNotSTUN, nil},
		{"indication", indication, dropNotRequest, nil},
		{"response", response, dropNotRequest, nil},
		{"attribute after fingerprint", withAfterFP, dropMalformed, nil},
		{"truncated attribute", truncated, dropNotSTUN, nil},
		{"attribute overruns message", overlong, dropMalformed, nil},
		{"change-request wrong length", buildReq(t, rawAttr(attrChangeRequest, []byte{0, 0, 6})), dropMalformed, nil},
		{"response-port wrong length", buildReq(t, rawAttr(attrResponsePort, []byte{1, 2, 3})), dropMalformed, nil},
		{"fingerprint wrong length", buildReq(t, rawAttr(attrFingerprint, []byte{1, 2})), dropMalformed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			got := parseRequest(tc.pkt, &r)
			if got != tc.drop {
				t.Fatalf("drop = %v, want %v", got, tc.drop)
			}
			if tc.want != nil && !tc.want(&r) {
				t.Errorf("unexpected parse: %+v", r)
			}
		})
	}
}

// decodePion decodes a response with pion, failing the test if pion
// rejects it.
func decodePion(t testing.TB, b []byte) *stun.Message {
	t.Helper()
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("pion cannot decode our response: %v (% x)", err, b)
	}
	return m
}

func addrPort(ip net.IP, port int) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// pionView extracts with pion every attribute a success response may have.
type pionView struct {
	xor, mapped, other, origin netip.AddrPort
	software                   string
	padding                    int // -1 absent
	fingerprint                bool
}

func viewPion(t testing.TB, m *stun.Message) pionView {
	t.Helper()
	v := pionView{padding: -1}
	var x stun.XORMappedAddress
	if x.GetFrom(m) == nil {
		v.xor = addrPort(x.IP, x.Port)
	}
	var ma stun.MappedAddress
	if ma.GetFrom(m) == nil {
		v.mapped = addrPort(ma.IP, ma.Port)
	}
	var oa stun.OtherAddress
	if oa.GetFrom(m) == nil {
		v.other = addrPort(oa.IP, oa.Port)
	}
	var ro stun.ResponseOrigin
	if ro.GetFrom(m) == nil {
		v.origin = addrPort(ro.IP, ro.Port)
	}
	var sw stun.Software
	if sw.GetFrom(m) == nil {
		v.software = sw.String()
	}
	if p, err := m.Get(stun.AttrType(attrPadding)); err == nil {
		v.padding = len(p)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Fatalf("bad FINGERPRINT in response: %v", err)
		}
		v.fingerprint = true
	}
	return v
}

func TestBuildSuccessAgainstPion(t *testing.T) {
	v4 := answer{
		mapped: netip.MustParseAddrPort("198.51.100.7:40000"),
		origin: netip.MustParseAddrPort("203.0.113.10:3479"),
		other:  netip.MustParseAddrPort("203.0.113.11:3478"),
	}
	v6 := answer{
		mapped: netip.MustParseAddrPort("[2001:db8::7]:40000"),
		origin: netip.MustParseAddrPort("[2001:db8::10]:3479"),
		other:  netip.MustParseAddrPort("[2001:db8::11]:3478"),
	}
	single := v4
	single.other = netip.AddrPort{}
	tests := []struct {
		name     string
		req      []byte
		a        answer
		budget   int
		want     pionView
		wantSize int
	}{
		{"v4 all attributes in 4x of 20 bytes", buildReq(t), v4, 80,
			pionView{xor: v4.mapped, mapped: v4.mapped, other: v4.other, origin: v4.origin, software: "natcheck", padding: -1}, 80},
		{"v4 single ip: no OTHER-ADDRESS", buildReq(t), single, 80,
			pionView{xor: v4.mapped, mapped: v4.mapped, origin: v4.origin, software: "natcheck", padding: -1}, 68},
		{"v4 fingerprint", buildReq(t, stun.Fingerprint), v4, 112,
			pionView{xor: v4.mapped, mapped: v4.mapped, other: v4.other, origin: v4.origin, software: "natcheck", padding: -1, fingerprint: true}, 88},
		{"v6 tight budget keeps XOR-MAPPED and OTHER-ADDRESS", buildReq(t), v6, 80,
			pionView{xor: v6.mapped, other: v6.other, software: "natcheck", padding: -1}, 80},
		{"v6 roomy budget has all", buildReq(t, changeReq(0), stun.Fingerprint), v6, 144,
			pionView{xor: v6.mapped, mapped: v6.mapped, other: v6.other, origin: v6.origin, software: "natcheck", padding: -1, fingerprint: true}, 136},
		{"padding mirrored", buildReq(t, rawAttr(attrPadding, make([]byte, 1500))), v4, 4 * 1524, pionView{xor: v4.mapped, mapped: v4.mapped, other: v4.other, origin: v4.origin, software: "natcheck", padding: 1500}, 80 + 4 + 1500},
		{"padding trimmed to budget", buildReq(t, rawAttr(attrPadding, make([]byte, 1500))), v4, 200, pionView{xor: v4.mapped, mapped: v4.mapped, other: v4.other, origin: v4.origin, software: "natcheck", padding: 116}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			if d := parseRequest(tc.req, &r); d != dropNone {
				t.Fatal(d)
			}
			out := make([]byte, maxResponse)
			n := buildSuccess(out, &r, &tc.a, tc.budget, "natcheck")
			if n > tc.budget || n != tc.wantSize {
				t.Errorf("size %d, want %d (budget %d)", n, tc.wantSize, tc.budget)
			}
			m := decodePion(t, out[:n])
			if m.Type != stun.BindingSuccess || m.TransactionID != [12]byte(tc.req[8:20]) {
				t.Errorf("type %v id %x", m.Type, m.TransactionID)
			}
			if got := viewPion(t, m); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// legacyAttrs walks an RFC 3489 message's attributes.
func legacyAttrs(t testing.TB, b []byte) map[uint16][]byte {
	t.Helper()
	if len(b) < 20 || int(binary.BigEndian.Uint16(b[2:]))+20 != len(b) {
		t.Fatalf("bad legacy message % x", b)
	}
	m := map[uint16][]byte{}
	for off := 20; off+4 <= len(b); {
		typ, l := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+2:]))
		m[typ] = b[off+4 : off+4+l]
		off += 4 + (l+3)&^3
	}
	return m
}

func legacyAddr(v []byte) netip.AddrPort {
	if len(v) != 8 || v[1] != 1 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[4:8])), binary.BigEndian.Uint16(v[2:]))
}

func TestBuildSuccessLegacy(t *testing.T) {
	req := legacyReq(tlv(attrChangeRequest, 0, 0, 0, 0))
	var r request
	if d := parseRequest(req, &r); d != dropNone || !r.legacy {
		t.Fatalf("drop %v legacy %v", d, r.legacy)
	}
	a := answer{
		mapped: netip.MustParseAddrPort("198.51.100.7:40000"),
		origin: netip.MustParseAddrPort("203.0.113.10:3478"),
		other:  netip.MustParseAddrPort("203.0.113.11:3479"),
	}
	out := make([]byte, maxResponse)
	n := buildSuccess(out, &r, &a, 4*len(req), "natcheck")
	if !bytes.Equal(out[4:20], req[4:20]) || binary.BigEndian.Uint16(out) != typeBindingSuccess {
		t.Fatalf("header % x", out[:20])
	}
	attrs := legacyAttrs(t, out[:n])
	if got := legacyAddr(attrs[attrMappedAddress]); got != a.mapped {
		t.Errorf("MAPPED-ADDRESS %v", got)
	}
	if got := legacyAddr(attrs[attrSourceAddress]); got != a.origin {
		t.Errorf("SOURCE-ADDRESS %v", got)
	}
	if got := legacyAddr(attrs[attrChangedAddress]); got != a.other {
		t.Errorf("CHANGED-ADDRESS %v", got)
	}
	if _, ok := attrs[attrXORMappedAddress]; ok {
		t.Error("XOR-MAPPED-ADDRESS without magic cookie")
	}
}

func TestBuildErrorAgainstPion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int
		unknown []uint16
		fp      bool
	}{
		{"420 one", 420, []uint16{attrChangeRequest}, false},
		{"420 two with fingerprint", 420, []uint16{0x7777, 0x0002}, true},
		{"400", 400, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req []byte
			if tc.fp {
				req = buildReq(t, stun.Fingerprint)
			} else {
				req = buildReq(t)
			}
			var r request
			parseRequest(req, &r)
			out := make([]byte, maxResponse)
			n := buildError(out, &r, tc.code, tc.unknown)
			m := decodePion(t, out[:n])
			if m.Type != stun.BindingError {
				t.Errorf("type %v", m.Type)
			}
			var ec stun.ErrorCodeAttribute
			if err := ec.GetFrom(m); err != nil || int(ec.Code) != tc.code {
				t.Errorf("ERROR-CODE %v %v", ec, err)
			}
			var ua stun.UnknownAttributes
			err := ua.GetFrom(m)
			if len(tc.unknown) == 0 {
				if err == nil {
					t.Error("UNKNOWN-ATTRIBUTES in a 400")
				}
			} else if err != nil || len(ua) != len(tc.unknown) || uint16(ua[0]) != tc.unknown[0] {
				t.Errorf("UNKNOWN-ATTRIBUTES %v %v", ua, err)
			}
			if tc.fp != viewPion(t, m).fingerprint {
				t.Errorf("fingerprint %v, want %v", !tc.fp, tc.fp)
			}
		})
	}
}

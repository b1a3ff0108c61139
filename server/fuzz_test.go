package server

import (
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/natcheck/natcheck/rendezvous"
)

// FuzzParseRequest feeds arbitrary datagrams through the request path. It
// checks that nothing panics, that garbage is never answered, that every
// answer decodes with pion and respects the amplification bound, and that
// whatever we accept pion accepts too.
func FuzzParseRequest(f *testing.F) {
	f.Add(rfc5769Request)
	f.Add(rfc5769ResponseV4)
	f.Add(rfc5769ResponseV6)
	f.Add(buildReq(f))
	f.Add(buildReq(f, changeReq(6), stun.Fingerprint))
	f.Add(buildReq(f, rawAttr(attrResponsePort, []byte{1, 2})))
	f.Add(buildReq(f, rawAttr(attrPadding, make([]byte, 64))))
	f.Add(buildReq(f, rawAttr(0x7777, []byte{1, 2, 3})))
	f.Add(legacyReq(tlv(attrChangeRequest, 0, 0, 0, 6)))
	f.Add([]byte{})
	f.Add(rdvRequest(0))
	h := &handler{fam: &testFamily, software: "natcheck"}
	single := &handler{fam: &singleFamily}
	v6 := netip.MustParseAddrPort("[2001:db8::7]:5000")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var r request
		drop := parseRequest(pkt, &r)
		out := make([]byte, maxResponse)
		for _, hh := range []*handler{h, single} {
			for _, src := range []netip.AddrPort{client, v6} {
				for _, stream := range []bool{false, true} {
					rep := hh.handle(pkt, src, 0, stream, 1, out)
					if !stream && rendezvous.IsMessage(pkt) {
						// Not STUN: the rendezvous's own parser decides
						// (fuzzed by rendezvous.FuzzHandle); here it is
						// "disabled", never larger than the request.
						if rep.n > len(pkt) {
							t.Fatalf("%d-byte rendezvous answer to %d bytes", rep.n, len(pkt))
						}
						continue
					}
					if drop != dropNone {
						if rep.n != 0 {
							t.Fatalf("answered a packet parsed as %v", drop)
						}
						continue
					}
					if rep.n == 0 {
						t.Fatalf("valid request dropped: %v", rep.drop)
					}
					if !stream && rep.n > amplification*len(pkt) {
						t.Fatalf("%d-byte answer to %d bytes", rep.n, len(pkt))
					}
					if !r.legacy {
						m := decodePion(t, out[:rep.n])
						if m.TransactionID != [12]byte(pkt[8:20]) {
							t.Fatal("transaction ID not echoed")
						}
						if m.Type == stun.BindingSuccess {
							if v := viewPion(t, m); v.xor != src {
								t.Fatalf("XOR-MAPPED-ADDRESS %v, want %v", v.xor, src)
							}
						}
					}
				}
			}
		}
		if drop == dropNone && !r.legacy {
			m := &stun.Message{Raw: append([]byte(nil), pkt...)}
			if err := m.Decode(); err != nil {
				t.Fatalf("we accept what pion rejects: %v", err)
			}
		}
	})
}

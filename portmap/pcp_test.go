package portmap

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestPCPMapRoundTrip(t *testing.T) {
	req := pcpRequest{Opcode: pcpOpMap, Lifetime: 60, Client: netip.MustParseAddr("192.168.1.2"),
		Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, InternalPort: 40000, ExternalPort: 40000}
	b := req.marshal()
	if len(b) != 60 || b[0] != 2 || b[1] != pcpOpMap {
		t.Fatalf("request % x", b)
	}
	// Client address IPv4-mapped, suggested external ::ffff:0.0.0.0.
	if !bytes.Equal(b[8:24], append(make([]byte, 10), 0xff, 0xff, 192, 168, 1, 2)) ||
		!bytes.Equal(b[44:60], append(make([]byte, 10), 0xff, 0xff, 0, 0, 0, 0)) {
		t.Errorf("addresses % x", b)
	}
	// Turn it into the response a server would send.
	resp := append([]byte(nil), b...)
	resp[1] |= pcpResponseBit
	resp[3] = 0
	copy(resp[56:60], []byte{203, 0, 113, 2})
	r, err := parsePCPResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opcode != pcpOpMap || r.Nonce != req.Nonce || r.InternalPort != 40000 || r.ExternalPort != 40000 ||
		r.ExternalIP != netip.MustParseAddr("203.0.113.2") || r.Lifetime != 60 || r.Protocol != protoUDP {
		t.Errorf("parsed %+v", r)
	}
}

func TestParsePCPResponseRejects(t *testing.T) {
	announce := pcpRequest{Opcode: pcpOpAnnounce}.marshal()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"NAT-PMP answer", []byte{0, 0x80, 0, 1, 0, 0, 0, 0}, errNATPMPAnswer},
		{"short", []byte{2, 0x80, 0, 0}, nil},
		{"odd length", append(append([]byte(nil), announce...), 0), nil},
		{"request", announce, nil},
		{"version 3", append([]byte{3}, announce[1:]...), nil},
		{"MAP without payload", append([]byte{2, 0x81}, announce[2:]...), nil},
		{"too long", make([]byte, 1104), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePCPResponse(tc.b)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("err %v, want an error (%v)", err, tc.want)
			}
		})
	}
}

// FuzzParsePCPResponse: no input makes the parser panic, and what it
// accepts satisfies the framing rules.
func FuzzParsePCPResponse(f *testing.F) {
	f.Add(pcpRequest{Opcode: pcpOpAnnounce}.marshal())
	m := pcpRequest{Opcode: pcpOpMap, Lifetime: 60, InternalPort: 1}.marshal()
	m[1] |= pcpResponseBit
	f.Add(m)
	f.Add([]byte{0, 0x80, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCPResponse(b)
		if err != nil {
			return
		}
		if len(b) < pcpHeaderLen || len(b)%4 != 0 || len(b) > pcpMaxLen || b[0] != pcpVersion || b[1]&pcpResponseBit == 0 {
			t.Fatalf("accepted a badly framed message % x", b)
		}
		if r.Opcode == pcpOpMap && len(b) < pcpHeaderLen+pcpMapLen {
			t.Fatalf("accepted a short MAP response % x", b)
		}
	})
}

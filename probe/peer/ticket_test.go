package peer

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
)

func sampleTicket() *Ticket {
	return &Ticket{
		Session: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Ufrag: "abcdEFGHijklMNOP", Pwd: "0123456789abcdefghijklmnopqrstuv", TURN: true,
		PortMap: PortMap{Checked: true, Protocols: []portmap.Protocol{portmap.UPnP, portmap.PCP}},
		NAT: NATSummary{Type: nat.TypePortRestrictedCone, Mapping: nat.EndpointIndependent, Filtering: nat.AddressAndPortDependent,
			Public: netip.MustParseAddrPort("203.0.113.2:41620")},
		Candidates: []Candidate{
			{Type: Host, Protocol: "udp", Addr: netip.MustParseAddrPort("192.168.1.2:41620"), Priority: 2130706431, Foundation: "1234567890"},
			{Type: Host, Protocol: "udp", Addr: netip.MustParseAddrPort("[2001:db8::2]:50000"), Priority: 2130706175, Foundation: "42"},
			{Type: Srflx, Protocol: "udp", Addr: netip.MustParseAddrPort("203.0.113.2:41620"), Priority: 1694498815, Foundation: "77",
				Related: netip.MustParseAddrPort("192.168.1.2:41620")},
			{Type: Relay, Protocol: "udp", Addr: netip.MustParseAddrPort("198.51.100.7:60000"), Priority: 16777215, Foundation: "9",
				Related: netip.MustParseAddrPort("203.0.113.2:41621")},
		},
	}
}

func TestTicketRoundTrip(t *testing.T) {
	for _, tk := range []*Ticket{sampleTicket(), {Answer: true, Ufrag: "u", Pwd: "p", PortMap: PortMap{Checked: true}, NAT: NATSummary{Type: nat.TypeUnknown, Mapping: nat.MappingUnknown, Filtering: nat.FilteringUnknown}}} {
		s, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(s, "+/= \n") {
			t.Errorf("ticket %q is not one line of URL-safe base64 without padding", s)
		}
		got, err := DecodeTicket("  answer: " + s + "\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tk) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, tk)
		}
		t.Logf("%d characters: %s", len(s), s)
	}
	s, _ := sampleTicket().Encode()
	if len(s) > 300 {
		t.Errorf("a ticket with four candidates takes %d characters: not short", len(s))
	}
}

func TestTicketBounds(t *testing.T) {
	tk := sampleTicket()
	for len(tk.Candidates) <= MaxCandidates {
		tk.Candidates = append(tk.Candidates, tk.Candidates[1])
	}
	if _, err := tk.Encode(); !errors.Is(err, ErrBadTicket) {
		t.Errorf("%d candidates: err = %v", len(tk.Candidates), err)
	}
	tk = sampleTicket()
	tk.Pwd = strings.Repeat("p", 257)
	if _, err := tk.Encode(); !errors.Is(err, ErrBadTicket) {
		t.Errorf("long pwd: err = %v", err)
	}
	// The most a ticket can hold still fits in MaxTicketLen.
	tk = sampleTicket()
	tk.Ufrag, tk.Pwd = strings.Repeat("u", 256), strings.Repeat("p", 256)
	tk.Candidates = nil
	for len(tk.Candidates) < MaxCandidates {
		c := sampleTicket().Candidates[3]
		c.Addr = netip.MustParseAddrPort("[2001:db8::1]:1")
		c.Related = c.Addr
		c.Foundation = strings.Repeat("f", maxFoundationLen)
		tk.Candidates = append(tk.Candidates, c)
	}
	if s, err := tk.Encode(); err != nil {
		t.Logf("largest ticket: %v", err)
	} else if len(s) > MaxTicketLen {
		t.Errorf("encoded %d > %d", len(s), MaxTicketLen)
	}

	good, _ := sampleTicket().Encode()
	for name, s := range map[string]string{
		"empty":     "",
		"not b64":   "not a ticket!",
		"cut":       good[:len(good)-10],
		"trailing":  good + "AAAA",
		"oversized": strings.Repeat("A", MaxTicketLen+1),
		"version":   "Ag" + good[2:],
	} {
		if _, err := DecodeTicket(s); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: err = %v, want ErrBadTicket", name, err)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}

func FuzzTicket(f *testing.F) {
	good, _ := sampleTicket().Encode()
	f.Add(good)
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := DecodeTicket(s)
		if err != nil {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("error %v does not wrap ErrBadTicket", err)
			}
			return
		}
		again, err := tk.Encode()
		if err != nil {
			t.Fatalf("a decoded ticket does not encode: %v", err)
		}
		tk2, err := DecodeTicket(again)
		if err != nil || !reflect.DeepEqual(tk, tk2) {
			t.Fatalf("re-encoding changed the ticket: %v", err)
		}
	})
}

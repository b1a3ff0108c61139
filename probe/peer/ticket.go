package peer

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
)

// TicketVersion is the first byte of every ticket this build writes.
const TicketVersion = 1

// Bounds of a ticket: its text, its candidates and its strings.
const (
	MaxTicketLen     = 2048 // characters of the base64 text
	MaxCandidates    = 32
	maxCredentialLen = 256 // RFC 8445: ufrag 4-256, pwd 22-256 characters
	maxFoundationLen = 32
)

// ErrBadTicket is wrapped by every ticket decoding error.
var ErrBadTicket = errors.New("bad ticket")

// CandidateType is an ICE candidate's type (RFC 8445 section 5.1.1).
type CandidateType string

// The candidate types.
const (
	Host  CandidateType = "host"
	Srflx CandidateType = "srflx"
	Prflx CandidateType = "prflx"
	Relay CandidateType = "relay"
)

// Candidate is one transport address a side offers.
type Candidate struct {
	Type       CandidateType
	Protocol   string // "udp" (a relay candidate reached over TURN-TCP is still udp)
	Addr       netip.AddrPort
	Priority   uint32
	Foundation string
	Related    netip.AddrPort // the base of a srflx or relay candidate; zero when unknown
}

// NATSummary is a side's quick NAT classification, shared in its ticket.
type NATSummary struct {
	Type      nat.NATType
	Mapping   nat.Mapping
	Filtering nat.Filtering
	Public    netip.AddrPort
}

// Ticket is what one side tells the other before the ICE checks: an offer
// from the side that starts (controlling), an answer from the other.
type Ticket struct {
	Answer     bool    // an answer ticket, not an offer
	Session    [8]byte // random, chosen by the offer; the answer repeats it
	Ufrag, Pwd string
	NAT        NATSummary
	TURN       bool // this side offers relay candidates
	PortMap    PortMap
	Candidates []Candidate
}

// PortMap is whether a side's router granted a port mapping when asked
// (UPnP IGD, NAT-PMP, PCP), for the explanation of a failed run.
type PortMap struct {
	Checked   bool               // the check ran; false: nothing is known
	Protocols []portmap.Protocol // those that granted a mapping, in portmap.Protocols order; nil when none
}

// The enums as one byte each; index 0 is the unknown value.
var (
	typeCodes      = []nat.NATType{nat.TypeUnknown, nat.TypeOpenInternet, nat.TypeFullCone, nat.TypeRestrictedCone, nat.TypePortRestrictedCone, nat.TypeSymmetric, nat.TypeSymmetricFirewall, nat.TypeUDPBlocked}
	mappingCodes   = []nat.Mapping{nat.MappingUnknown, nat.EndpointIndependent, nat.AddressDependent, nat.AddressAndPortDependent}
	filteringCodes = []nat.Filtering{nat.FilteringUnknown, nat.EndpointIndependent, nat.AddressDependent, nat.AddressAndPortDependent}
	candCodes      = []CandidateType{"", Host, Srflx, Prflx, Relay}
	protoCodes     = []string{"", "udp", "tcp"}
)

const (
	flagAnswer = 1 << iota
	flagTURN
	flagPortMapChecked
	flagUPnP
	flagNATPMP
	flagPCP
)

// portMapFlags are the flags of the port-mapping protocols.
var portMapFlags = map[portmap.Protocol]byte{portmap.UPnP: flagUPnP, portmap.NATPMP: flagNATPMP, portmap.PCP: flagPCP}

// code is v's index in codes; an unlisted value is 0 (unknown).
func code[T comparable](codes []T, v T) byte {
	for i, c := range codes {
		if c == v {
			return byte(i)
		}
	}
	return 0
}

// Encode returns the ticket as one line of URL-safe base64 of its
// MarshalBinary. It fails when the ticket is out of bounds (too many
// candidates, overlong strings, more than MaxTicketLen characters).
func (t *Ticket) Encode() (string, error) {
	b, err := t.MarshalBinary()
	if err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	if len(s) > MaxTicketLen {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrBadTicket, len(s), MaxTicketLen)
	}
	return s, nil
}

// MarshalBinary is the ticket's compact encoding, the first byte its
// format version: the payload of a text ticket, and the blob a rendezvous
// carries (encrypted) between the two sides.
func (t *Ticket) MarshalBinary() ([]byte, error) {
	if len(t.Candidates) > MaxCandidates {
		return nil, fmt.Errorf("%w: %d candidates, at most %d", ErrBadTicket, len(t.Candidates), MaxCandidates)
	}
	b := []byte{TicketVersion, 0}
	if t.Answer {
		b[1] |= flagAnswer
	}
	if t.TURN {
		b[1] |= flagTURN
	}
	if t.PortMap.Checked {
		b[1] |= flagPortMapChecked
		for _, p := range t.PortMap.Protocols {
			b[1] |= portMapFlags[p]
		}
	}
	b = append(b, t.Session[:]...)
	var err error
	for _, s := range []struct {
		v   string
		max int
	}{{t.Ufrag, maxCredentialLen}, {t.Pwd, maxCredentialLen}} {
		if b, err = appendString(b, s.v, s.max); err != nil {
			return nil, err
		}
	}
	b = append(b, code(typeCodes, t.NAT.Type), code(mappingCodes, t.NAT.Mapping), code(filteringCodes, t.NAT.Filtering))
	b = appendAddr(b, t.NAT.Public)
	b = append(b, byte(len(t.Candidates)))
	for _, c := range t.Candidates {
		ct, pc := code(candCodes, c.Type), code(protoCodes, c.Protocol)
		if ct == 0 || pc == 0 || !c.Addr.IsValid() {
			return nil, fmt.Errorf("%w: candidate %s %s %s", ErrBadTicket, c.Type, c.Protocol, c.Addr)
		}
		b = append(b, ct, pc)
		b = appendAddr(b, c.Addr)
		b = binary.BigEndian.AppendUint32(b, c.Priority)
		if b, err = appendString(b, c.Foundation, maxFoundationLen); err != nil {
			return nil, err
		}
		b = appendAddr(b, c.Related)
	}
	if len(b) > MaxTicketLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadTicket, len(b), MaxTicketLen)
	}
	return b, nil
}

func appendString(b []byte, s string, max int) ([]byte, error) {
	if len(s) > max {
		return b, fmt.Errorf("%w: a string of %d bytes, at most %d", ErrBadTicket, len(s), max)
	}
	return append(append(b, byte(len(s))), s...), nil
}

// appendAddr writes an address as its length (0, 4 or 16) and bytes, then
// the port when the address is valid.
func appendAddr(b []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return append(b, 0)
	}
	ip := a.Addr().Unmap()
	s := ip.AsSlice()
	b = append(append(b, byte(len(s))), s...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// reader reads a ticket's bytes; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBadTicket}, args...)...)
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("cut short (was it copied whole?)")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) string(max int) string {
	n := int(r.byte())
	if n > max {
		r.fail("a string of %d bytes, at most %d", n, max)
		return ""
	}
	return string(r.bytes(n))
}

func (r *reader) addr() netip.AddrPort {
	n := int(r.byte())
	if n == 0 {
		return netip.AddrPort{}
	}
	if n != 4 && n != 16 {
		r.fail("an address of %d bytes", n)
		return netip.AddrPort{}
	}
	ip, _ := netip.AddrFromSlice(r.bytes(n))
	ip = ip.Unmap() // as Encode writes it
	p := r.bytes(2)
	if r.err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(p))
}

// enum reads a one-byte code of codes.
func enum[T any](r *reader, codes []T, what string) T {
	c := int(r.byte())
	if c >= len(codes) {
		r.fail("unknown %s %d (a newer natcheck's ticket?)", what, c)
		return codes[0]
	}
	return codes[c]
}

// DecodeTicket parses a ticket as Encode writes it. Surrounding white space
// is ignored, and so is a "ticket: " or "answer: " prefix copied along
// with it. Every error wraps ErrBadTicket.
func DecodeTicket(s string) (*Ticket, error) {
	s = strings.TrimSpace(s)
	for _, p := range []string{"ticket:", "answer:"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			s = strings.TrimSpace(rest)
		}
	}
	switch {
	case s == "":
		return nil, fmt.Errorf("%w: empty", ErrBadTicket)
	case len(s) > MaxTicketLen:
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrBadTicket, len(s), MaxTicketLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not a natcheck ticket (not base64url)", ErrBadTicket)
	}
	return UnmarshalTicket(b)
}

// UnmarshalTicket parses MarshalBinary's encoding (a rendezvous blob once
// decrypted). Every error wraps ErrBadTicket.
func UnmarshalTicket(b []byte) (*Ticket, error) {
	if len(b) > MaxTicketLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadTicket, len(b), MaxTicketLen)
	}
	r := &reader{b: b}
	if v := r.byte(); r.err == nil && v != TicketVersion {
		return nil, fmt.Errorf("%w: format version %d, this natcheck reads %d", ErrBadTicket, v, TicketVersion)
	}
	t := &Ticket{}
	flags := r.byte()
	t.Answer, t.TURN = flags&flagAnswer != 0, flags&flagTURN != 0
	if t.PortMap.Checked = flags&flagPortMapChecked != 0; t.PortMap.Checked {
		for _, p := range portmap.Protocols {
			if flags&portMapFlags[p] != 0 {
				t.PortMap.Protocols = append(t.PortMap.Protocols, p)
			}
		}
	}
	copy(t.Session[:], r.bytes(8))
	t.Ufrag = r.string(maxCredentialLen)
	t.Pwd = r.string(maxCredentialLen)
	t.NAT.Type = enum(r, typeCodes, "NAT type")
	t.NAT.Mapping = enum(r, mappingCodes, "mapping")
	t.NAT.Filtering = enum(r, filteringCodes, "filtering")
	t.NAT.Public = r.addr()
	n := int(r.byte())
	if n > MaxCandidates {
		r.fail("%d candidates, at most %d", n, MaxCandidates)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var c Candidate
		c.Type = enum(r, candCodes, "candidate type")
		c.Protocol = enum(r, protoCodes, "protocol")
		c.Addr = r.addr()
		if p := r.bytes(4); p != nil {
			c.Priority = binary.BigEndian.Uint32(p)
		}
		c.Foundation = r.string(maxFoundationLen)
		c.Related = r.addr()
		if r.err == nil && (c.Type == "" || c.Protocol == "" || !c.Addr.IsValid()) {
			r.fail("candidate %d is incomplete", i+1)
		}
		t.Candidates = append(t.Candidates, c)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d bytes after the end", len(r.b))
	}
	if r.err == nil && (t.Ufrag == "" || t.Pwd == "") {
		r.fail("no ICE credentials")
	}
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}

package peer

import (
	"strings"
	"testing"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
)

// TestClassifyRelays: the prediction counts a relay only where it can
// carry the connection, and a TURN server that gave no candidate is named
// in the explanation.
func TestClassifyRelays(t *testing.T) {
	side := func(typ nat.NATType, turn bool) Side { return Side{NAT: NATSummary{Type: typ}, TURN: turn} }
	relayPair := &Pair{Local: Candidate{Type: Relay}, Remote: Candidate{Type: Srflx}, State: "succeeded"}
	problem := "turns:turn.example.net: TLS certificate verification failed: the certificate is signed by an unknown authority"
	for _, c := range []struct {
		name      string
		a, b      Side
		selected  *Pair
		problems  []string
		outcome   nat.P2P
		predicted nat.P2P
		says      string
	}{
		{"blocked side without its own relay", side(nat.TypeUDPBlocked, false), side(nat.TypeSymmetric, true), nil, nil,
			nat.P2PFailed, nat.P2PFailed, "it needs its own"},
		{"blocked side with its relay", side(nat.TypeUDPBlocked, true), side(nat.TypeSymmetric, false), relayPair, nil,
			nat.P2PRelayed, nat.P2PRelayed, "the TURN relay carried"},
		{"relay refused", side(nat.TypeUDPBlocked, false), side(nat.TypeSymmetric, true), nil, []string{problem},
			nat.P2PFailed, nat.P2PFailed, "A has no UDP to the internet; this side's TURN relay gave no candidate: " + problem},
		{"relayed, one relay refused", side(nat.TypeSymmetric, true), side(nat.TypeSymmetric, false), relayPair, []string{problem},
			nat.P2PRelayed, nat.P2PRelayed, "(this side's TURN relay gave no candidate: " + problem + ")"},
	} {
		r := &Result{Role: Controlling, Local: c.a, Remote: c.b, Selected: c.selected, TURNProblems: c.problems}
		Classify(r)
		if r.Outcome != c.outcome || r.Predicted != c.predicted || r.Matched != tri.Yes {
			t.Errorf("%s: outcome %s predicted %s matched %v; want %s, %s, true", c.name, r.Outcome, r.Predicted, r.Matched, c.outcome, c.predicted)
		}
		if !strings.Contains(r.Explanation, c.says) {
			t.Errorf("%s: explanation %q, want it to say %q", c.name, r.Explanation, c.says)
		}
	}
}

// TestPortMapHint: a failed run without TURN names the routers that
// granted a port mapping, or says neither did when both were asked.
func TestPortMapHint(t *testing.T) {
	sym := func(pm PortMap) Side { return Side{NAT: NATSummary{Type: nat.TypeSymmetric}, PortMap: pm} }
	none := PortMap{Checked: true}
	upnp := PortMap{Checked: true, Protocols: []portmap.Protocol{portmap.UPnP}}
	all := PortMap{Checked: true, Protocols: portmap.Protocols}
	for _, c := range []struct {
		a, b PortMap
		says string
	}{
		{none, upnp, "or a port mapping (B's router offers UPnP)"},
		{all, none, "or a port mapping (A's router offers UPnP, NAT-PMP and PCP)"},
		{all, upnp, "(A's router offers UPnP, NAT-PMP and PCP, B's UPnP)"},
		{none, none, "(neither router grants one by UPnP, NAT-PMP or PCP: set up port forwarding by hand)"},
		{PortMap{}, none, "or a port mapping"},
	} {
		r := &Result{Role: Controlling, Local: sym(c.a), Remote: sym(c.b)}
		Classify(r)
		if !strings.HasSuffix(r.Explanation, c.says) {
			t.Errorf("A %+v, B %+v: explanation %q, want it to end %q", c.a, c.b, r.Explanation, c.says)
		}
	}
}

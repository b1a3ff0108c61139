package report

import (
	"io"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/peer"
)

// The peer fixtures are lab values: A behind a port-restricted cone at
// 203.0.113.2, B behind other NATs at 198.51.100.7 (docs/peer.md quotes
// them).

func cand(t peer.CandidateType, addr, related string) peer.Candidate {
	c := peer.Candidate{Type: t, Protocol: "udp", Addr: netip.MustParseAddrPort(addr)}
	if related != "" {
		c.Related = netip.MustParseAddrPort(related)
	}
	return c
}

func peerSide(typ nat.NATType, m nat.Mapping, f nat.Filtering, public string, cs ...peer.Candidate) peer.Side {
	return peer.Side{NAT: peer.NATSummary{Type: typ, Mapping: m, Filtering: f, Public: netip.MustParseAddrPort(public)}, Candidates: cs}
}

var (
	fxAHost  = cand(peer.Host, "192.168.1.2:50412", "")
	fxASrflx = cand(peer.Srflx, "203.0.113.2:50412", "192.168.1.2:50412")
	fxBHost  = cand(peer.Host, "10.0.0.5:61002", "")
	fxBSrflx = cand(peer.Srflx, "198.51.100.7:61002", "10.0.0.5:61002")
)

// fxPeerDirect: A port-restricted cone, B full cone; the srflx pair won.
func fxPeerDirect() *peer.Result {
	r := &peer.Result{
		Role: peer.Controlling, Meeting: peer.MeetingTicket,
		Selected:      &peer.Pair{Local: fxASrflx, Remote: fxBSrflx, State: "succeeded", Nominated: true, RTT: ms(41.9)},
		TimeToConnect: ms(612.4), Pings: peer.Pings{Sent: 20, Received: 20, RTT: ms(41.3)},
		Local:  peerSide(nat.TypePortRestrictedCone, nat.EndpointIndependent, nat.AddressAndPortDependent, "203.0.113.2:50412", fxAHost, fxASrflx),
		Remote: peerSide(nat.TypeFullCone, nat.EndpointIndependent, nat.EndpointIndependent, "198.51.100.7:61002", fxBHost, fxBSrflx),
		Pairs: []peer.Pair{
			{Local: fxAHost, Remote: fxBHost, State: "failed"},
			{Local: fxASrflx, Remote: fxBSrflx, State: "succeeded", Nominated: true, RTT: ms(41.9)},
		},
		Elapsed: 2*time.Second + ms(107),
	}
	peer.Classify(r)
	return r
}

// fxPeerFailed: A symmetric, B port-restricted cone: failed, as predicted.
func fxPeerFailed() *peer.Result {
	aSrflx := cand(peer.Srflx, "203.0.113.2:40001", "192.168.1.2:50412")
	r := &peer.Result{
		Role: peer.Controlled, Meeting: peer.MeetingTicket,
		Pings:  peer.Pings{},
		Local:  peerSide(nat.TypePortRestrictedCone, nat.EndpointIndependent, nat.AddressAndPortDependent, "198.51.100.7:61002", fxBHost, fxBSrflx),
		Remote: peerSide(nat.TypeSymmetric, nat.AddressAndPortDependent, nat.AddressAndPortDependent, "203.0.113.2:40001", fxAHost, aSrflx),
		Pairs: []peer.Pair{
			{Local: fxBHost, Remote: fxAHost, State: "failed"},
			{Local: fxBSrflx, Remote: aSrflx, State: "failed"},
		},
		Elapsed: 6*time.Second + ms(912),
	}
	// B's router grants UPnP mappings, A's grants none.
	r.Local.PortMap = peer.PortMap{Checked: true, Protocols: []portmap.Protocol{portmap.UPnP}}
	r.Remote.PortMap = peer.PortMap{Checked: true}
	peer.Classify(r)
	return r
}

// fxPeerMismatch: two port-restricted cones that did not connect (a
// router that answered the first punch and gave its client a new port).
func fxPeerMismatch() *peer.Result {
	r := fxPeerFailed()
	r.Remote.NAT = peer.NATSummary{Type: nat.TypePortRestrictedCone, Mapping: nat.EndpointIndependent, Filtering: nat.AddressAndPortDependent,
		Public: netip.MustParseAddrPort("203.0.113.2:50412")}
	r.Remote.Candidates = []peer.Candidate{fxAHost, fxASrflx}
	r.Pairs[1].Remote = fxASrflx
	peer.Classify(r)
	return r
}

// fxPeerRelayed: two symmetric NATs, B offers TURN: relayed, as predicted.
func fxPeerRelayed() *peer.Result {
	relay := cand(peer.Relay, "192.0.2.50:49200", "198.51.100.7:61010")
	aSrflx := cand(peer.Srflx, "203.0.113.2:40001", "192.168.1.2:50412")
	r := &peer.Result{
		Role: peer.Controlling, Meeting: peer.MeetingTicket,
		Selected:      &peer.Pair{Local: aSrflx, Remote: relay, State: "succeeded", Nominated: true, RTT: ms(63.0)},
		TimeToConnect: 2*time.Second + ms(540), Pings: peer.Pings{Sent: 20, Received: 19, RTT: ms(62.4), Loss: 0.05},
		Local:  peerSide(nat.TypeSymmetric, nat.AddressAndPortDependent, nat.AddressAndPortDependent, "203.0.113.2:40001", fxAHost, aSrflx),
		Remote: peerSide(nat.TypeSymmetric, nat.AddressAndPortDependent, nat.AddressAndPortDependent, "198.51.100.7:40777", fxBHost, fxBSrflx, relay),
		Pairs: []peer.Pair{
			{Local: aSrflx, Remote: fxBSrflx, State: "failed"},
			{Local: aSrflx, Remote: relay, State: "succeeded", Nominated: true, RTT: ms(63.0)},
		},
		Elapsed: 4*time.Second + ms(80),
	}
	r.Remote.TURN = true
	peer.Classify(r)
	return r
}

// fxPeerTURNRefused: the failed run of fxPeerFailed, where B was given a
// turns: server whose certificate it refused: no relay candidate, and the
// explanation says why in place of "a relay is needed".
func fxPeerTURNRefused() *peer.Result {
	r := fxPeerFailed()
	r.TURNProblems = []string{"turns:turn.example.net: TLS certificate verification failed: the certificate is signed by an unknown authority (self-signed or private CA: pass it with --ca FILE; --insecure skips the check)"}
	peer.Classify(r)
	return r
}

func peerGoldens() []golden {
	return []golden{
		{"peer.txt", func(w io.Writer) error { return PeerText(w, fxPeerDirect(), false) }},
		{"peer-verbose.txt", func(w io.Writer) error { return PeerText(w, fxPeerDirect(), true) }},
		{"peer.json", jsonOf(func() any { return NewPeerJSON(fxPeerDirect()) })},
		{"peer-failed.txt", func(w io.Writer) error { return PeerText(w, fxPeerFailed(), false) }},
		{"peer-failed.json", jsonOf(func() any { return NewPeerJSON(fxPeerFailed()) })},
		{"peer-mismatch.txt", func(w io.Writer) error { return PeerText(w, fxPeerMismatch(), false) }},
		{"peer-relayed.txt", func(w io.Writer) error { return PeerText(w, fxPeerRelayed(), false) }},
		{"peer-turn-refused.txt", func(w io.Writer) error { return PeerText(w, fxPeerTURNRefused(), false) }},
		{"peer-turn-refused.json", jsonOf(func() any { return NewPeerJSON(fxPeerTURNRefused()) })},
	}
}

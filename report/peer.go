package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/peer"
)

// PeerJSON is the JSON form of `natcheck peer` (docs/json.md).
type PeerJSON struct {
	SchemaVersion     int              `json:"schema_version"`
	Role              peer.Role        `json:"role"`
	Meeting           peer.Meeting     `json:"meeting"`
	Outcome           nat.P2P          `json:"outcome"`
	SelectedPair      *PeerPairJSON    `json:"selected_pair"`
	RTTMs             *float64         `json:"rtt_ms"`
	Loss              float64          `json:"loss"`
	Pings             PeerPingsJSON    `json:"pings"`
	TimeToConnectMs   *float64         `json:"time_to_connect_ms"`
	Predicted         nat.P2P          `json:"predicted"`
	PredictionMatched tri.Bool         `json:"prediction_matched"`
	Explanation       string           `json:"explanation"`
	Finding           string           `json:"finding"`
	PeerLeft          bool             `json:"peer_left"`
	TURNProblems      []string         `json:"turn_problems"`
	Local             PeerSideJSON     `json:"local"`
	Remote            PeerSideJSON     `json:"remote"`
	Pairs             []PeerPairStJSON `json:"pairs"`
	ElapsedMs         float64          `json:"elapsed_ms"`
}

// PeerPairJSON is the selected pair.
type PeerPairJSON struct {
	Local      string             `json:"local"`
	LocalType  peer.CandidateType `json:"local_type"`
	Remote     string             `json:"remote"`
	RemoteType peer.CandidateType `json:"remote_type"`
	Protocol   string             `json:"protocol"`
}

// PeerPingsJSON counts the pings over the selected pair.
type PeerPingsJSON struct {
	Sent     int `json:"sent"`
	Received int `json:"received"`
}

// PeerSideJSON is what one side offered.
type PeerSideJSON struct {
	NAT        PeerNATJSON         `json:"nat"`
	TURN       bool                `json:"turn"`
	PortMap    []portmap.Protocol  `json:"port_mapping"`
	Candidates []PeerCandidateJSON `json:"candidates"`
}

// PeerNATJSON is a side's quick NAT summary.
type PeerNATJSON struct {
	Type          nat.NATType   `json:"type"`
	Mapping       nat.Mapping   `json:"mapping"`
	Filtering     nat.Filtering `json:"filtering"`
	PublicAddress string        `json:"public_address"`
}

// PeerCandidateJSON is one candidate.
type PeerCandidateJSON struct {
	Type     peer.CandidateType `json:"type"`
	Address  string             `json:"address"`
	Protocol string             `json:"protocol"`
}

// PeerPairStJSON is one candidate pair as the ICE agent last saw it.
type PeerPairStJSON struct {
	Local     string   `json:"local"`
	Remote    string   `json:"remote"`
	State     string   `json:"state"`
	Nominated bool     `json:"nominated"`
	RTTMs     *float64 `json:"rtt_ms"`
}

// NewPeerJSON converts a peer run.
func NewPeerJSON(r *peer.Result) PeerJSON {
	j := PeerJSON{
		SchemaVersion: SchemaVersion, Role: r.Role, Meeting: r.Meeting, Outcome: r.Outcome,
		Loss: r.Pings.Loss, Pings: PeerPingsJSON{Sent: r.Pings.Sent, Received: r.Pings.Received},
		Predicted: r.Predicted, PredictionMatched: r.Matched, Explanation: OneLine(r.Explanation), Finding: OneLine(r.Finding),
		PeerLeft: r.PeerLeft, TURNProblems: append([]string{}, r.TURNProblems...), Local: peerSideJSON(r.Local), Remote: peerSideJSON(r.Remote),
		Pairs: []PeerPairStJSON{}, ElapsedMs: Millis(r.Elapsed),
	}
	if s := r.Selected; s != nil {
		j.SelectedPair = &PeerPairJSON{Local: s.Local.Addr.String(), LocalType: s.Local.Type,
			Remote: s.Remote.Addr.String(), RemoteType: s.Remote.Type, Protocol: s.Local.Protocol}
		j.TimeToConnectMs = msPtr(r.TimeToConnect)
		if r.Pings.Received > 0 {
			j.RTTMs = msPtr(r.Pings.RTT)
		}
	}
	for _, p := range r.Pairs {
		j.Pairs = append(j.Pairs, PeerPairStJSON{Local: p.Local.Addr.String(), Remote: p.Remote.Addr.String(),
			State: p.State, Nominated: p.Nominated, RTTMs: optMillis(p.RTT)})
	}
	return j
}

func peerSideJSON(s peer.Side) PeerSideJSON {
	j := PeerSideJSON{TURN: s.TURN, Candidates: []PeerCandidateJSON{}, NAT: PeerNATJSON{
		Type: s.NAT.Type, Mapping: s.NAT.Mapping, Filtering: s.NAT.Filtering}}
	if s.NAT.Public.IsValid() {
		j.NAT.PublicAddress = s.NAT.Public.String()
	}
	if s.PortMap.Checked {
		j.PortMap = append([]portmap.Protocol{}, s.PortMap.Protocols...)
	}
	for _, c := range s.Candidates {
		j.Candidates = append(j.Candidates, PeerCandidateJSON{Type: c.Type, Address: c.Addr.String(), Protocol: c.Protocol})
	}
	return j
}

// PeerLine is the first line: the outcome.
func PeerLine(r *peer.Result) string {
	pings := fmt.Sprintf("%d/%d lost", r.Pings.Sent-r.Pings.Received, r.Pings.Sent)
	rtt := "no reply"
	if r.Pings.Received > 0 {
		rtt = "rtt " + FormatDuration(r.Pings.RTT)
	}
	s := r.Selected
	switch {
	case r.Outcome == nat.P2PDirect && s != nil:
		return fmt.Sprintf("direct: %s %s <-> %s %s, %s, %s", s.Local.Type, s.Local.Addr, s.Remote.Type, s.Remote.Addr, rtt, pings)
	case r.Outcome == nat.P2PRelayed && s != nil:
		relay := s.Local.Addr
		if s.Local.Type != peer.Relay {
			relay = s.Remote.Addr
		}
		return fmt.Sprintf("relayed: via TURN %s, %s, %s", relay, rtt, pings)
	}
	return "failed: " + OneLine(r.Explanation)
}

// PredictionLine compares the outcome with the NAT types' prediction.
func PredictionLine(r *peer.Result) string {
	a, b := r.AB()
	line := fmt.Sprintf("predicted: %s (A %s, B %s)", r.Predicted, a.NAT.Type, b.NAT.Type)
	switch r.Matched {
	case tri.Yes:
		return line + "; matched"
	case tri.No:
		if r.Finding != "" {
			return line + "; did not match: " + OneLine(r.Finding)
		}
		return line + "; did not match"
	}
	return line
}

// PeerText writes a peer run: the outcome, the explanation, the
// prediction; verbose adds both sides, their candidates and every pair.
func PeerText(out io.Writer, r *peer.Result, verbose bool) error {
	var b strings.Builder
	b.WriteString(PeerLine(r) + "\n")
	if r.Outcome != nat.P2PFailed {
		b.WriteString(OneLine(r.Explanation) + "\n")
	}
	b.WriteString(PredictionLine(r) + "\n")
	switch {
	case r.PeerLeft && r.Outcome == nat.P2PFailed:
		b.WriteString("the peer left (Ctrl-C) before the two connected\n")
	case r.PeerLeft:
		b.WriteString("the peer left (Ctrl-C) before the pings ended\n")
	}
	if _, err := io.WriteString(out, b.String()); err != nil || !verbose {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	me := "A"
	if r.Role == peer.Controlled {
		me = "B"
	}
	fmt.Fprintf(tw, "\nthis side\t%s (%s), met by %s\n", me, r.Role, r.Meeting)
	a, bs := r.AB()
	for _, side := range []struct {
		name string
		s    peer.Side
	}{{"A", a}, {"B", bs}} {
		n := side.s.NAT
		turn := ""
		if side.s.TURN {
			turn = ", offers TURN"
		}
		if pm := side.s.PortMap; pm.Checked && len(pm.Protocols) > 0 {
			turn += fmt.Sprintf(", router grants port mappings (%s)", joinProtocols(pm.Protocols))
		} else if pm.Checked {
			turn += ", router grants no port mapping"
		}
		fmt.Fprintf(tw, "%s\t%s (mapping %s, filtering %s), public %s%s\n", side.name, n.Type, n.Mapping, n.Filtering, AddrString(n.Public), turn)
		for _, c := range side.s.Candidates {
			fmt.Fprintf(tw, "  %s\t%s %s\n", c.Type, c.Protocol, c.Addr)
		}
	}
	if len(r.Pairs) > 0 {
		fmt.Fprintf(tw, "pairs (local -> remote)\n")
	}
	for _, p := range r.Pairs {
		nom := ""
		if p.Nominated {
			nom = ", nominated"
		}
		rtt := ""
		if p.RTT > 0 {
			rtt = ", rtt " + FormatDuration(p.RTT)
		}
		fmt.Fprintf(tw, "  %s %s -> %s %s\t%s%s%s\n", p.Local.Type, p.Local.Addr, p.Remote.Type, p.Remote.Addr, p.State, nom, rtt)
	}
	if r.Selected != nil {
		fmt.Fprintf(tw, "time to connect\t%s after meeting\n", FormatDuration(r.TimeToConnect))
	}
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(r.Elapsed))
	return tw.Flush()
}

func joinProtocols(ps []portmap.Protocol) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = string(p)
	}
	return strings.Join(ss, ", ")
}

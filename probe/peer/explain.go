package peer

import (
	"fmt"
	"strings"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
)

// Classify sets the outcome from the selected pair, then the prediction
// from both sides' NAT types, whether they match, and why.
func Classify(r *Result) {
	switch {
	case r.Selected == nil:
		r.Outcome = nat.P2PFailed
	case r.Selected.Local.Type == Relay || r.Selected.Remote.Type == Relay:
		r.Outcome = nat.P2PRelayed
	default:
		r.Outcome = nat.P2PDirect
	}
	a, b := r.AB()
	r.Predicted = nat.Predict(a.NAT.Type, b.NAT.Type, a.TURN, b.TURN)
	r.Explanation, r.Finding = Explain(r.Outcome, r.Selected, a, b, r.TURNProblems)
	r.Matched = tri.Unknown
	if r.Outcome == nat.P2PFailed && r.NoCheckFromPeer {
		// Nothing came from A: it may never have started.
		r.Explanation += "; besides, no check from A arrived while this side waited (--wait): A did not start (was the answer given to it?), or none of its packets get through"
		if r.Predicted != nat.P2PFailed {
			r.Finding = ""
			return
		}
	}
	if r.Outcome == nat.P2PFailed && r.PeerLeft {
		// Cut short by the other side: no verdict on the path.
		r.Explanation = "the other side left (interrupted) before the connection checks ended: nothing can be concluded about the path"
		r.Finding = ""
		return
	}
	if r.Predicted != nat.P2PUnknown && r.Predicted != "" {
		r.Matched = tri.Of(r.Predicted == r.Outcome)
	}
}

// Explain says why the outcome is what it is, from the selected pair and
// both sides (a controlling, b controlled), and, when the outcome is not
// the one their NAT types predict, what that suggests (finding; "" when
// they agree or there is no prediction). turnProblems are why this
// side's TURN servers gave no relay candidate: said in place of what a
// relay would have done when nothing connected, else in parentheses.
func Explain(outcome nat.P2P, sel *Pair, a, b Side, turnProblems []string) (explanation, finding string) {
	explanation, finding = explain(outcome, sel, a, b, turnProblems)
	if len(turnProblems) > 0 && outcome != nat.P2PFailed {
		explanation += " (" + relayGaveNone(turnProblems) + ")"
	}
	return explanation, finding
}

// relayGaveNone is the TURN problems in a clause.
func relayGaveNone(problems []string) string {
	return "this side's TURN relay gave no candidate: " + strings.Join(problems, "; ")
}

func explain(outcome nat.P2P, sel *Pair, a, b Side, turnProblems []string) (explanation, finding string) {
	turn := a.TURN || b.TURN
	predicted := nat.Predict(a.NAT.Type, b.NAT.Type, a.TURN, b.TURN)
	reason := nat.PredictionReason(a.NAT.Type, b.NAT.Type)
	switch outcome {
	case nat.P2PDirect:
		switch {
		case sel != nil && sel.Local.Type == Host && sel.Remote.Type == Host:
			explanation = "the host addresses reach each other: the two sides share a network, or one has a public address"
		default:
			explanation = "hole punching worked: each side's packets got through the other's NAT"
		}
		if predicted == nat.P2PFailed || predicted == nat.P2PRelayed {
			if sel != nil && sel.Local.Type == Host && sel.Remote.Type == Host {
				finding = "the NAT types predict no direct path (" + reason + "), but the two sides did not need to cross their NATs"
			} else {
				finding = "better than the NAT types predict (" + reason + "): a NAT kept its port toward the peer, or allocates ports predictably"
			}
		}
	case nat.P2PRelayed:
		explanation = "direct failed: " + directWhy(a, b, reason, predicted) + "; the TURN relay carried the connection"
		if predicted == nat.P2PDirect {
			finding = mismatch(a, b)
		}
	default:
		explanation = directWhy(a, b, reason, predicted)
		switch {
		case len(turnProblems) > 0:
			explanation += "; " + relayGaveNone(turnProblems)
		case turn && predicted == nat.P2PFailed:
			// Only a side with UDP can use the other's relay.
			explanation += "; the other side's relay cannot help a side without UDP: it needs its own (--turn over TCP or TLS)"
		case turn:
			explanation += "; the relay did not connect either (check it with natcheck turn)"
		default:
			explanation += "; a relay is needed (--turn), or a port mapping" + portMapHint(a, b)
		}
		if predicted == nat.P2PDirect {
			finding = mismatch(a, b)
		}
	}
	return explanation, finding
}

// directWhy says why no direct path was found.
func directWhy(a, b Side, reason string, predicted nat.P2P) string {
	switch predicted {
	case nat.P2PFailed, nat.P2PRelayed:
		return reason
	case nat.P2PDirect:
		return "no candidate pair answered although the NAT types allow it"
	}
	if len(a.Candidates) == 0 || len(b.Candidates) == 0 {
		return "a side offered no candidates"
	}
	return "no candidate pair answered (the NAT types are not both known)"
}

// mismatch is the finding of a direct path that the NAT types allow but
// that did not work.
func mismatch(a, b Side) string {
	cone := func(t nat.NATType) bool {
		return t == nat.TypePortRestrictedCone || t == nat.TypeSymmetricFirewall
	}
	if cone(a.NAT.Type) && cone(b.NAT.Type) {
		return fmt.Sprintf("both sides filter by address and port (A %s, B %s), which should connect, but did not: "+
			"a firewall, or a router that answers unsolicited packets (conntrack), so the mapping toward the peer differs from the STUN one",
			a.NAT.Type, b.NAT.Type)
	}
	return fmt.Sprintf("the NAT types (A %s, B %s) allow a direct path, but none worked: "+
		"a firewall drops UDP between the sides, or a NAT maps toward the peer differently than toward STUN",
		a.NAT.Type, b.NAT.Type)
}

// portMapHint says which side's router granted a port mapping when asked,
// or that neither did; "" when it is not known for both.
func portMapHint(a, b Side) string {
	names := map[portmap.Protocol]string{portmap.UPnP: "UPnP", portmap.NATPMP: "NAT-PMP", portmap.PCP: "PCP"}
	offers := func(s Side) string {
		var ps []string
		for _, p := range s.PortMap.Protocols {
			ps = append(ps, names[p])
		}
		switch len(ps) {
		case 0:
			return ""
		case 1:
			return ps[0]
		}
		return strings.Join(ps[:len(ps)-1], ", ") + " and " + ps[len(ps)-1]
	}
	oa, ob := offers(a), offers(b)
	switch {
	case oa != "" && ob != "":
		return " (A's router offers " + oa + ", B's " + ob + ")"
	case oa != "":
		return " (A's router offers " + oa + ")"
	case ob != "":
		return " (B's router offers " + ob + ")"
	case a.PortMap.Checked && b.PortMap.Checked:
		return " (neither router grants one by UPnP, NAT-PMP or PCP: set up port forwarding by hand)"
	}
	return ""
}

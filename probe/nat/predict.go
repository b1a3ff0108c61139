package nat

import "fmt"

// P2P is the outcome of a connection attempt between two hosts, as
// predicted from their NAT types or as observed.
type P2P string

// The outcomes of natcheck peer.
const (
	P2PDirect  P2P = "direct"  // a host or (server/peer) reflexive pair
	P2PRelayed P2P = "relayed" // only through a TURN relay
	P2PFailed  P2P = "failed"  // no connection
	P2PUnknown P2P = "unknown" // a NAT type was not known
)

// rank orders the types by how hard they make hole punching. A firewall
// that filters by address and port but maps nothing is a port-restricted
// cone for this purpose: its mapping is the host's own address.
func rank(t NATType) int {
	switch t {
	case TypeOpenInternet:
		return 0
	case TypeFullCone:
		return 1
	case TypeRestrictedCone:
		return 2
	case TypePortRestrictedCone, TypeSymmetricFirewall:
		return 3
	case TypeSymmetric:
		return 4
	case TypeUDPBlocked:
		return 5
	}
	return -1
}

// PredictDirect is the expected outcome of a direct UDP connection
// between a host behind a and one behind b (the table of docs/peer.md):
// direct when either side's NAT is open, full-cone or restricted-cone (it
// lets the other side's packets in whatever port they come from), or both
// are port-restricted cones (each learns the other's mapping from STUN,
// and it does not change toward the peer); failed when a port-restricted
// cone meets a symmetric NAT (its mapping toward the peer is not the one
// STUN saw, and the cone filters on that port), two symmetric NATs meet,
// or either side has no UDP at all. Without both types, unknown; but a
// side with UDP blocked fails whatever the other is.
func PredictDirect(a, b NATType) P2P {
	ra, rb := rank(a), rank(b)
	switch {
	case ra == 5 || rb == 5:
		return P2PFailed
	case ra < 0 || rb < 0:
		return P2PUnknown
	case min(ra, rb) <= 2:
		return P2PDirect
	case ra == 3 && rb == 3:
		return P2PDirect
	}
	return P2PFailed
}

// Predict is PredictDirect with relays: turnA and turnB say whether A and
// B offer TURN relay candidates. A failed direct attempt becomes relayed
// when a relay can carry it: one side has a relay, and a side without
// UDP has one of its own (a relay sends and takes UDP to and from the
// peer, which a side without UDP cannot; it reaches its own relay over
// TCP or TLS).
func Predict(a, b NATType, turnA, turnB bool) P2P {
	p := PredictDirect(a, b)
	reach := func(t NATType, turn bool) bool { return turn || t != TypeUDPBlocked }
	if p == P2PFailed && (turnA || turnB) && reach(a, turnA) && reach(b, turnB) {
		return P2PRelayed
	}
	return p
}

// describe is what a NAT type means for the packets of a peer.
func describe(t NATType) string {
	switch t {
	case TypeOpenInternet:
		return "has a public address and no firewall"
	case TypeFullCone:
		return "is behind a full-cone NAT (anyone may send to its mapping)"
	case TypeRestrictedCone:
		return "is behind a restricted-cone NAT (filters by address only)"
	case TypePortRestrictedCone:
		return "is behind a port-restricted cone NAT (filters by address and port)"
	case TypeSymmetricFirewall:
		return "has a public address behind a firewall that filters by address and port"
	case TypeSymmetric:
		return "is behind a symmetric NAT (mapping changes per destination)"
	case TypeUDPBlocked:
		return "has no UDP to the internet"
	}
	return "has an unknown NAT type"
}

// PredictionReason says in one sentence why PredictDirect(a, b) is what it
// is, naming the sides A (a) and B (b).
func PredictionReason(a, b NATType) string {
	ra, rb := rank(a), rank(b)
	switch p := PredictDirect(a, b); {
	case ra == 5 && rb == 5:
		return "neither side has UDP to the internet"
	case ra == 5:
		return "A " + describe(a)
	case rb == 5:
		return "B " + describe(b)
	case p == P2PUnknown:
		switch {
		case ra < 0 && rb < 0:
			return "neither side's NAT type is known"
		case ra < 0:
			return "A's NAT type is not known"
		}
		return "B's NAT type is not known"
	case p == P2PDirect && ra <= rb && ra <= 2:
		return "A " + describe(a) + ": B's packets get in"
	case p == P2PDirect && rb < ra && rb <= 2:
		return "B " + describe(b) + ": A's packets get in"
	case p == P2PDirect:
		return "both are port-restricted cones: each side's mapping toward the other is the one STUN saw"
	case ra == 4 && rb == 4:
		return "both are behind symmetric NATs: neither side's mapping toward the other can be known in advance"
	case ra == 4:
		return fmt.Sprintf("A %s and B filters by address and port", describe(a))
	}
	return fmt.Sprintf("B %s and A filters by address and port", describe(b))
}

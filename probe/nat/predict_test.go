package nat

import "testing"

// TestPredictTable checks the whole table of docs/peer.md (and of issue
// 11), in both orders, with and without a relay.
func TestPredictTable(t *testing.T) {
	const (
		O = TypeOpenInternet
		F = TypeFullCone
		R = TypeRestrictedCone
		P = TypePortRestrictedCone
		S = TypeSymmetric
		B = TypeUDPBlocked
		W = TypeSymmetricFirewall
		U = TypeUnknown
	)
	d, x, u := P2PDirect, P2PFailed, P2PUnknown
	cols := []NATType{O, F, R, P, S, B}
	table := [][]P2P{
		//  O  F  R  P  S  B
		{d, d, d, d, d, x}, // O
		{d, d, d, d, d, x}, // F
		{d, d, d, d, d, x}, // R
		{d, d, d, d, x, x}, // P
		{d, d, d, x, x, x}, // S
		{x, x, x, x, x, x}, // B
	}
	for i, a := range cols {
		for j, b := range cols {
			want := table[i][j]
			if got := PredictDirect(a, b); got != want {
				t.Errorf("PredictDirect(%s, %s) = %s, want %s", a, b, got, want)
			}
			relayed := want
			if want == x {
				relayed = P2PRelayed
			}
			if got := Predict(a, b, true, true); got != relayed {
				t.Errorf("Predict(%s, %s, turn on both) = %s, want %s", a, b, got, relayed)
			}
			// A relay on one side only: a side without UDP cannot use the
			// other's relay.
			oneRelay := relayed
			if a == B {
				oneRelay = x
			}
			if got := Predict(a, b, false, true); got != oneRelay {
				t.Errorf("Predict(%s, %s, turn on B) = %s, want %s", a, b, got, oneRelay)
			}
			if got := Predict(a, b, false, false); got != want {
				t.Errorf("Predict(%s, %s, no turn) = %s, want %s", a, b, got, want)
			}
			if PredictionReason(a, b) == "" {
				t.Errorf("PredictionReason(%s, %s) is empty", a, b)
			}
		}
	}
	for _, c := range []struct {
		a, b NATType
		want P2P
	}{
		{W, P, d}, {W, S, x}, {W, O, d}, {U, O, u}, {S, U, u}, {U, U, u}, {U, B, x}, {B, U, x}, {"", F, u},
	} {
		if got := PredictDirect(c.a, c.b); got != c.want {
			t.Errorf("PredictDirect(%q, %q) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		a, b         NATType
		turnA, turnB bool
		want         P2P
	}{
		{B, S, true, false, P2PRelayed}, {B, B, true, false, x}, {B, B, true, true, P2PRelayed}, {S, B, true, false, x},
	} {
		if got := Predict(c.a, c.b, c.turnA, c.turnB); got != c.want {
			t.Errorf("Predict(%s, %s, %v, %v) = %s, want %s", c.a, c.b, c.turnA, c.turnB, got, c.want)
		}
	}
	if got := Predict(U, S, true, true); got != u {
		t.Errorf("Predict(unknown, symmetric, turn) = %s, want unknown", got)
	}
}

func TestPredictionReason(t *testing.T) {
	for _, c := range []struct {
		a, b NATType
		want string
	}{
		{TypeSymmetric, TypePortRestrictedCone, "A is behind a symmetric NAT (mapping changes per destination) and B filters by address and port"},
		{TypePortRestrictedCone, TypeSymmetric, "B is behind a symmetric NAT (mapping changes per destination) and A filters by address and port"},
		{TypePortRestrictedCone, TypePortRestrictedCone, "both are port-restricted cones: each side's mapping toward the other is the one STUN saw"},
		{TypeFullCone, TypeSymmetric, "A is behind a full-cone NAT (anyone may send to its mapping): B's packets get in"},
		{TypeSymmetric, TypeUDPBlocked, "B has no UDP to the internet"},
		{TypeUnknown, TypeSymmetric, "A's NAT type is not known"},
	} {
		if got := PredictionReason(c.a, c.b); got != c.want {
			t.Errorf("PredictionReason(%s, %s) =\n  %q\nwant\n  %q", c.a, c.b, got, c.want)
		}
	}
}

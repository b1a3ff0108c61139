package portmap

import "github.com/natcheck/natcheck/internal/tri"

// Aliases of the shared tri-state, kept only for natpmp.go, which still
// names them unqualified; new code uses package tri directly.
type Tri = tri.Bool

// Answers of a Tri; see tri.Unknown, tri.No and tri.Yes.
const (
	Unknown = tri.Unknown
	No      = tri.No
	Yes     = tri.Yes
)

// TriOf is tri.Of.
func TriOf(b bool) Tri { return tri.Of(b) }

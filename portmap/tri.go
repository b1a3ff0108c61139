package portmap

import "encoding/json"

// Tri is a three-valued answer. Unknown means "not tested" or "could not be
// decided", which a report must keep apart from No.
type Tri int8

// The three answers. The zero value is Unknown, so a field nobody set says so.
const (
	Unknown Tri = iota
	No
	Yes
)

// TriOf turns a decided boolean into a Tri.
func TriOf(b bool) Tri {
	if b {
		return Yes
	}
	return No
}

// String is "yes", "no" or "unknown".
func (t Tri) String() string {
	switch t {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

// MarshalJSON writes true, false or null.
func (t Tri) MarshalJSON() ([]byte, error) {
	switch t {
	case Yes:
		return []byte("true"), nil
	case No:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads true, false or null.
func (t *Tri) UnmarshalJSON(b []byte) error {
	var v *bool
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = Unknown
	if v != nil {
		*t = TriOf(*v)
	}
	return nil
}

// Package tri is the three-valued answer findings share: yes, no, or unknown.
package tri

import "encoding/json"

// Bool is a three-valued answer. Unknown means "not tested" or "could not
// be decided", which a report must keep apart from No.
type Bool int8

// The three answers. The zero value is Unknown, so a field nobody set says so.
const (
	Unknown Bool = iota
	No
	Yes
)

// Of turns a decided boolean into a Bool.
func Of(b bool) Bool {
	if b {
		return Yes
	}
	return No
}

// String is "yes", "no" or "unknown".
func (t Bool) String() string {
	switch t {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

// MarshalJSON writes true, false or null.
func (t Bool) MarshalJSON() ([]byte, error) {
	switch t {
	case Yes:
		return []byte("true"), nil
	case No:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads true, false or null.
func (t *Bool) UnmarshalJSON(b []byte) error {
	var v *bool
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = Unknown
	if v != nil {
		*t = Of(*v)
	}
	return nil
}

package turncheck

import (
	"testing"
	"time"
)

func TestLooksREST(t *testing.T) {
	now := time.Unix(1_764_570_000, 0)
	for _, tc := range []struct {
		user string
		want bool
	}{
		{"1764573600:alice", true},
		{"alice:1764573600", true},
		{"1764573600", true},
		{"1764000000:alice", true}, // expired a week ago: still REST
		{"alice", false},
		{"42:alice", false}, // a number, but no plausible timestamp
		{"alice:bob", false},
		{"9999999999999:alice", false},
	} {
		if got := LooksREST(tc.user, now); got != tc.want {
			t.Errorf("LooksREST(%q) = %v, want %v", tc.user, got, tc.want)
		}
	}
}

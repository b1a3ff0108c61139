package stunclient

import (
	"errors"
	"strings"
	"testing"
)

// A huge bad server text is not repeated whole in the error.
func TestParseServerClipsLongInput(t *testing.T) {
	for _, in := range []string{strings.Repeat("a", 100_000), strings.Repeat("é", 50_000) + ":1", "stun:" + strings.Repeat("a", 300)} {
		_, err := ParseServer(in)
		if !errors.Is(err, ErrBadServer) {
			t.Fatalf("ParseServer(%d bytes): %v, want ErrBadServer", len(in), err)
		}
		msg := err.Error()
		if len(msg) > 200 || !strings.Contains(msg, "…") || !strings.Contains(msg, "bytes)") {
			t.Errorf("ParseServer(%d bytes): error of %d bytes: %.300s", len(in), len(msg), msg)
		}
		if !strings.Contains(msg, "\"") || strings.ContainsRune(msg, '\uFFFD') {
			t.Errorf("ParseServer(%d bytes): %q cut inside a rune or not quoted", len(in), msg)
		}
	}
	if _, err := ParseServer("bad host!"); err == nil || !strings.Contains(err.Error(), `"bad host!": `) {
		t.Errorf("short input: %v", err)
	}
}

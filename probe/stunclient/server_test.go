package stunclient

import (
	"errors"
	"testing"
)

func TestParseServer(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
	}{
		{"stun.example.net", "stun.example.net", 3478},
		{"stun.example.net:19302", "stun.example.net", 19302},
		{"203.0.113.10", "203.0.113.10", 3478},
		{"203.0.113.10:3479", "203.0.113.10", 3479},
		{"2001:db8::1", "2001:db8::1", 3478},
		{"[2001:db8::1]", "2001:db8::1", 3478},
		{"[2001:db8::1]:3479", "2001:db8::1", 3479},
		{"::ffff:203.0.113.10", "203.0.113.10", 3478},
		{"stun:stun.example.net", "stun.example.net", 3478},
		{"stun:stun.example.net:5349", "stun.example.net", 5349},
		{"stun:[2001:db8::1]:3479", "2001:db8::1", 3479},
		{"  stun.example.net  ", "stun.example.net", 3478},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseServer(tt.in)
			if err != nil {
				t.Fatalf("ParseServer(%q): %v", tt.in, err)
			}
			if s.Host != tt.host || s.Port != tt.port {
				t.Errorf("ParseServer(%q) = %s:%d, want %s:%d", tt.in, s.Host, s.Port, tt.host, tt.port)
			}
		})
	}
}

func TestParseServerRejects(t *testing.T) {
	for _, in := range []string{
		"", "not a server::", "host:port", "host:0", "203.0.113.10:0", "host:0x10", "host:70000", "host:-1",
		"stuns:secure.example.net", "turn:relay.example.net", "[2001:db8::1", "-bad-.example",
		"a..b", "exa mple.net", "stun:", ":3478",
	} {
		t.Run(in, func(t *testing.T) {
			s, err := ParseServer(in)
			if err == nil {
				t.Fatalf("ParseServer(%q) = %+v, want an error", in, s)
			}
			if !errors.Is(err, ErrBadServer) {
				t.Errorf("error %v does not wrap ErrBadServer", err)
			}
		})
	}
}

func TestParseServerList(t *testing.T) {
	got, err := ParseServerList("a.example:1, b.example ,[2001:db8::2]:9")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.example:1", "b.example:3478", "[2001:db8::2]:9"}
	if len(got) != len(want) {
		t.Fatalf("got %d servers, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("server %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParseServerList("ok.example,bad::x"); err == nil {
		t.Error("a list with one bad entry must fail")
	}
}

func TestDefaultServersParse(t *testing.T) {
	d := DefaultServers()
	if len(d) < 4 {
		t.Fatalf("want at least 4 embedded default servers, got %d", len(d))
	}
	for _, s := range d {
		if s.Port == 0 || s.Host == "" {
			t.Errorf("bad default server %+v", s)
		}
	}
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"a.example", "[::1]:1", "stun:x:1", "1.2.3.4:5", "::", "stun:[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseServer(in)
		if err != nil {
			return
		}
		if s.Port < 1 || s.Port > 65535 || s.Host == "" {
			t.Fatalf("ParseServer(%q) accepted %+v", in, s)
		}
		// What we print must parse back to the same server.
		again, err := ParseServer(s.String())
		if err != nil || again.Host != s.Host || again.Port != s.Port {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", in, s, s.String(), again, err)
		}
	})
}

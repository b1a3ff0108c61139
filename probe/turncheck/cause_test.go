package turncheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestExplain(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		f       Failure
		verdict Verdict
		words   []string
	}{
		{Failure{Step: StepAuth, Code: 401}, Failed, []string{"wrong user or password", "realm"}},
		{Failure{Step: StepAuth, Code: 401, REST: true}, Failed, []string{"expired", "clock"}},
		{Failure{Step: StepPermission, Code: 403}, Failed, []string{"denies that peer address", "denied-peer-ip"}},
		{Failure{Step: StepAllocate, Code: 486}, Failed, []string{"allocation quota"}},
		{Failure{Step: StepAllocate, Code: 508}, Failed, []string{"capacity"}},
		{Failure{Step: StepAllocate, Code: 441}, Failed, []string{"transport not supported"}},
		{Failure{Step: StepAllocate, Code: 442}, Failed, []string{"transport not supported"}},
		{Failure{Step: StepAllocate, Code: 437}, Failed, []string{"allocation mismatch"}},
		{Failure{Step: StepReach, Silent: true, Transport: UDP}, Unreachable, []string{"no answer over UDP", "turns:", "443"}},
		{Failure{Step: StepReach, Silent: true, Transport: TCP}, Unreachable, []string{"no answer over TCP"}},
		{Failure{Step: StepTLS, TLS: TLSExpired}, Failed, []string{"certificate", "expired"}},
		{Failure{Step: StepTLS, TLS: TLSName}, Failed, []string{"certificate", "name"}},
		{Failure{Step: StepTLS, TLS: TLSUnknown}, Failed, []string{"certificate", "unknown authority"}},
		{Failure{Step: StepAllocate, Server: a("203.0.113.10"), Relayed: a("10.0.0.5")}, Failed, []string{"private", "external-ip"}},
		{Failure{Step: StepData, Relayed: a("203.0.113.10")}, Failed, []string{"carries no data"}},
	} {
		v, cause := Explain(tc.f)
		if v != tc.verdict {
			t.Errorf("%+v: verdict %s, want %s", tc.f, v, tc.verdict)
		}
		for _, w := range tc.words {
			if !strings.Contains(cause, w) {
				t.Errorf("%+v: cause %q lacks %q", tc.f, cause, w)
			}
		}
	}
}

func TestPrivateRelay(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		server, relayed string
		want            bool
	}{
		{"203.0.113.10", "10.0.0.5", true},
		{"203.0.113.10", "100.64.1.1", true},
		{"203.0.113.10", "203.0.113.10", false},
		{"10.0.0.1", "10.0.0.5", false},
		{"127.0.0.1", "127.0.0.1", false},
		{"10.0.0.1", "127.0.0.1", true},
	} {
		if got := PrivateRelay(a(tc.server), a(tc.relayed)); got != tc.want {
			t.Errorf("PrivateRelay(%s, %s) = %v", tc.server, tc.relayed, got)
		}
	}
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // host:port/transport, or "error"
	}{
		{"turn:turn.example.net", "turn.example.net:3478/udp"},
		{"turn:203.0.113.10:3479?transport=tcp", "203.0.113.10:3479/tcp"},
		{"turns:turn.example.net", "turn.example.net:5349/tls"},
		{"turns:turn.example.net:443?transport=tcp", "turn.example.net:443/tls"},
		{"TURN:[2001:db8::1]:3478", "2001:db8::1:3478/udp"},
		{"turns:h?transport=udp", "error"},
		{"stun:h", "error"},
		{"turn://h", "error"},
		{"turn:h:0", "error"},
		{"turn:h?foo=1", "error"},
		{"turn:", "error"},
	} {
		u, err := ParseURI(tc.in)
		got := "error"
		if err == nil {
			got = u.Host + ":" + itoa(u.Port) + "/" + string(u.Transport)
		}
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %s (%v), want %s", tc.in, got, err, tc.want)
		}
	}
}

func itoa(p uint16) string { return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[8:] }

func TestRESTCredentials(t *testing.T) {
	// checked with openssl dgst -sha1 -hmac north: base64(HMAC-SHA1(secret, "expiry:user")).
	u, p := RESTCredentials("north", "alice", time.Hour, time.Unix(1700000000, 0))
	if u != "1700003600:alice" || p != "wjwSXO2ch1B6VaLTLMy2Avn5O9o=" {
		t.Errorf("got %s %s", u, p)
	}
}

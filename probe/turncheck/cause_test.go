package turncheck

import (
	"net/netip"
	"slices"
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

func TestRESTClock(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		f     Failure
		words []string
	}{
		{"expired, no server clock", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(-90 * time.Second), Now: now},
			[]string{"(401)", "expired at 2026-03-14T08:58:30Z by this host's clock, 90 s ago", "cannot be read from this server", "coturn does not"}},
		{"expired long ago", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(-72 * time.Hour), Now: now},
			[]string{"259200 s (3 days) ago"}},
		{"valid, server ahead", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(time.Hour), Now: now, ServerSkew: 2 * time.Hour, SkewKnown: true},
			[]string{"valid until 2026-03-14T10:00:00Z by this host's clock", "its clock or its secret differs", "7200 s (2h0m) ahead of this host's"}},
		{"expired, server behind", Failure{Step: StepAuth, Code: 400, REST: true, Expiry: now.Add(-time.Second), Now: now, ServerSkew: -5 * time.Second, SkewKnown: true},
			[]string{"(400;", "1 s ago", "5 s behind this host's"}},
		{"clocks agree", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(-time.Minute), Now: now, ServerSkew: 200 * time.Millisecond, SkewKnown: true},
			[]string{"(read from its nonce) agrees with this host's"}},
		{"clocks agree to the minute", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(-time.Minute), Now: now, ServerSkew: -20 * time.Second, SkewPrecision: 30 * time.Second, SkewKnown: true},
			[]string{"(read from its nonce, to 60 s) agrees with this host's"}},
		{"server far ahead, to the minute", Failure{Step: StepAuth, Code: 401, REST: true, Expiry: now.Add(-time.Minute), Now: now, ServerSkew: 10 * time.Minute, SkewPrecision: 30 * time.Second, SkewKnown: true},
			[]string{"is 600 s (10m) ahead of this host's (give or take 30 s)"}},
		{"not REST", Failure{Step: StepAuth, Code: 401, Expiry: now, Now: now}, []string{"wrong user or password"}},
	} {
		_, cause := Explain(tc.f)
		for _, w := range tc.words {
			if !strings.Contains(cause, w) {
				t.Errorf("%s: cause %q lacks %q", tc.name, cause, w)
			}
		}
	}
}

func TestRESTExpiry(t *testing.T) {
	for in, want := range map[string]int64{"1700003600:alice": 1700003600, "alice:1700003600": 1700003600, "1700003600": 1700003600, "alice": -1, "": -1} {
		got, ok := RESTExpiry(in)
		if (want < 0) == ok || (ok && got.Unix() != want) {
			t.Errorf("RESTExpiry(%q) = %v %v, want %d", in, got, ok, want)
		}
	}
}

func TestNonceClock(t *testing.T) {
	now := time.UnixMilli(1773478800123)
	for _, tc := range []struct {
		nonce     string
		want      time.Time
		precision time.Duration
	}{
		// pion/turn's ShortNonceHash: base36 of 4 bytes of Unix minutes and the HMAC.
		{"3R6BZHL3Z7GN72GPDCAMT7V0", time.Unix(1773478800+30, 0), 30 * time.Second},
		// pion/turn's NonceHash: hex, the first 8 bytes Unix milliseconds.
		{"0000019ceb92ec7b" + strings.Repeat("ab", 32), time.UnixMilli(1773478800507), time.Millisecond},
		// coturn's random hex nonces, and other random ones: no clock.
		{"f2d4c3b1a0e9d8c7", time.Time{}, 0},
		{"3a7c0f19e2b84d56", time.Time{}, 0},
		{strings.Repeat("ff", 40), time.Time{}, 0},
		{strings.Repeat("zz", 40), time.Time{}, 0},
		{"ZZZZZZZZZZZZZZZZZZZZZZZZ", time.Time{}, 0},
	} {
		got, p, ok := nonceClock(tc.nonce, now)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) || p != tc.precision {
			t.Errorf("nonceClock(%q) = %v ±%v %v, want %v ±%v", tc.nonce, got, p, ok, tc.want, tc.precision)
		}
	}
}

func TestCompareTransports(t *testing.T) {
	res := func(raw string, v Verdict, step StepName, silent bool) Result {
		u, err := ParseURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		cause := "the original cause"
		if v == Works {
			cause = ""
		}
		return Result{URI: u, Verdict: v, FailedStep: step, Cause: cause, silent: silent}
	}
	udpSilent := res("turn:turn.example.net", Unreachable, StepReach, true)
	for _, tc := range []struct {
		name string
		rs   []Result
		want string // in the UDP server's cause
	}{
		{"TLS works", []Result{udpSilent, res("turns:turn.example.net:5349", Works, "", false)},
			"no answer over UDP, but turns:turn.example.net:5349 works: UDP is blocked on the path (or the server does not listen on UDP); use turns:turn.example.net:5349"},
		{"TCP works", []Result{res("turn:turn.example.net?transport=tcp", Works, "", false), udpSilent},
			"but turn:turn.example.net?transport=tcp works"},
		{"TLS reached, certificate refused", []Result{udpSilent, res("turns:turn.example.net", Failed, StepTLS, false)},
			"answered over turns:turn.example.net (reached, then failed at tls): the server is up, so UDP is blocked"},
		{"TLS silent too", []Result{udpSilent, res("turns:turn.example.net", Unreachable, StepReach, true)},
			"no answer over UDP, and turns:turn.example.net could not be reached either (TLS failed too)"},
		{"TCP and TLS silent", []Result{udpSilent, res("turns:turn.example.net", Unreachable, StepReach, true), res("turn:turn.example.net?transport=tcp", Unreachable, StepReach, true)},
			"(TCP and TLS failed too)"},
		{"other host", []Result{udpSilent, res("turns:other.example.net", Works, "", false)}, "the original cause"},
		{"UDP alone", []Result{udpSilent}, "the original cause"},
		{"UDP refused, not silent", []Result{res("turn:turn.example.net", Unreachable, StepReach, false), res("turns:turn.example.net", Works, "", false)}, "the original cause"},
	} {
		CompareTransports(tc.rs)
		i := slices.IndexFunc(tc.rs, func(r Result) bool { return r.URI.Transport == UDP })
		if got := tc.rs[i].Cause; !strings.Contains(got, tc.want) {
			t.Errorf("%s: cause %q, want %q in it", tc.name, got, tc.want)
		}
		for _, r := range tc.rs {
			if r.URI.Transport != UDP && r.Verdict != Works && r.Cause != "the original cause" {
				t.Errorf("%s: %s's cause changed to %q", tc.name, r.URI.Raw, r.Cause)
			}
		}
	}
}

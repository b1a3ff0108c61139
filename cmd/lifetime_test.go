package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/report"
)

func TestLifetimeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--max", "1s", "--min", "2s"},
		{"--min", "0s"},
		{"--sockets", "1"},
		{"--sockets", "1000"},
		{"--rounds", "0"},
		{"-4", "-6"},
	} {
		out, errOut, code := execute(t, nil, append([]string{"lifetime", "-s", "127.0.0.1"}, args...)...)
		if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: code %d stdout %q stderr %q; want exit 2, one line on stderr", args, code, out, errOut)
		}
	}
}

// On loopback the server sees this host's own address: there is no NAT
// mapping to measure, and lifetime says so at once (exit 0) rather than
// "longer than" the time it probed. (An RFC 5780 server without
// RESPONSE-PORT, "unknown", is tested in probe/lifetime, which simulates a
// NAT.)
func TestLifetimeWithoutNAT(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, errOut, code := execute(t, nil, "lifetime", "--json", "-s", s.Addr.String())
	if code != ExitOK || errOut != "" {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	var j report.LifetimeJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if j.SchemaVersion != report.SchemaVersion || j.Result != "no-nat" || j.LowerMs != nil ||
		len(j.Servers) != 1 || j.Probes == nil {
		t.Errorf("unexpected: %+v", j)
	}
	start := time.Now()
	out, _, code = execute(t, nil, "lifetime", "-s", s.Addr.String())
	want := "UDP mapping lifetime: no NAT mapping to measure (the servers see this host's own address 127.0.0.1)\n"
	if code != ExitOK || out != want || time.Since(start) > 2*time.Second {
		t.Errorf("exit %d after %v, stdout %q, want %q", code, time.Since(start), out, want)
	}
}

func TestLifetimeNoServerExits3(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	out, errOut, code := execute(t, nil, "lifetime", "--timeout", "300ms", "-s", dead.String())
	if code != ExitNoAnswer || out != "" || !strings.Contains(errOut, "no STUN server answered") {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
}

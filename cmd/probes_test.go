package cmd

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
	"github.com/natcheck/natcheck/server"
)

// serveLoopback runs natcheck's own RFC 5780 server on 127.0.0.1 and
// 127.0.0.2 (UDP and TCP) and returns its primary endpoint.
func serveLoopback(t *testing.T) netip.AddrPort {
	t.Helper()
	s, _ := testutil.StartServer(t, server.Listen, server.Config{
		Addrs:   []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		Workers: 1, RateLimit: 0,
	})
	return s.Endpoints()[0]
}

// On loopback the server sees this host's own address: even with a server
// that honours RESPONSE-PORT there is no NAT mapping to measure (once, the
// answer was "longer than --max").
func TestLifetimeAgainstNatcheckServe(t *testing.T) {
	srv := serveLoopback(t)
	out, errOut, code := execute(t, nil, "lifetime", "--json", "--min", "100ms", "--max", "300ms", "--sockets", "3", "-s", srv.String())
	if code != ExitOK || errOut != "" {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	var j report.LifetimeJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if j.Result != "no-nat" || j.Servers[0].ResponsePort != "supported" ||
		j.LowerMs != nil || j.UpperMs != nil || len(j.Probes) != 0 {
		t.Errorf("unexpected: %+v", j)
	}
}

func TestTCPAgainstNatcheckServe(t *testing.T) {
	srv := serveLoopback(t)
	out, errOut, code := execute(t, nil, "tcp", "--json", "-s", srv.String())
	if code != ExitOK || errOut != "" {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	var j report.TCPMappingJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if j.SchemaVersion != report.SchemaVersion || j.Mapping != nat.EndpointIndependent || len(j.Tests) != 3 {
		t.Errorf("unexpected: %+v", j)
	}
	plain, _, _ := execute(t, nil, "tcp", "-s", srv.String())
	if plain != "TCP mapping: endpoint-independent\n" {
		t.Errorf("plain output %q", plain)
	}
}

func TestTCPNoServerExits3(t *testing.T) {
	out, errOut, code := execute(t, nil, "tcp", "--timeout", "500ms", "-s", "127.0.0.1:1")
	if code != ExitNoAnswer || out != "" || strings.Count(errOut, "\n") != 1 {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
}

func TestIPv6OnLoopbackIsRouted(t *testing.T) {
	s := stuntest.Start(t, "::1", stuntest.Behaviour{})
	out, errOut, code := execute(t, nil, "ipv6", "-s", s.Addr.String())
	if code != ExitOK || errOut != "" || out != "IPv6: works, routed (no translation): servers see this host's own ::1\n" {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
}

// IPv6 unusable: the answer still goes to stdout, the exit code says 3.
func TestIPv6WithoutIPv6ServerExits3(t *testing.T) {
	out, errOut, code := execute(t, nil, "ipv6", "--json", "-s", "127.0.0.1")
	var j report.IPv6JSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != ExitNoAnswer || j.STUN != "no-server" || j.Translated != tri.Unknown || !strings.Contains(errOut, "IPv6") {
		t.Errorf("code %d stun %q translated %v stderr %q", code, j.STUN, j.Translated, errOut)
	}
}

// A family flag that contradicts the command is bad usage, not ignored.
func TestFamilyFlagThatDoesNotApply(t *testing.T) {
	for _, args := range [][]string{{"ipv6", "-4"}, {"ipv6", "--ipv4"}, {"portmap", "-6"}} {
		out, errOut, code := execute(t, nil, append(args, "-s", "127.0.0.1:9")...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, "does not apply") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

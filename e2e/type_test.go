package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
)

// typeWant is the known verdict of a lab topology. A nil *bool means the
// field is not checked.
type typeWant struct {
	typ                 nat.NATType
	mapping             nat.Mapping
	filtering           nat.Filtering
	nat, cgnat, hairpin *bool
}

var (
	yes, no = ptrTo(true), ptrTo(false)
)

func ptrTo(b bool) *bool { return &b }

// typeVerdicts are the verdicts every lab topology must get against a
// server with RFC 5780 support.
var typeVerdicts = map[lab.Kind]typeWant{
	lab.NoNAT:              {"open-internet", "endpoint-independent", "endpoint-independent", no, no, nil},
	lab.Firewall:           {"symmetric-udp-firewall", "endpoint-independent", "address-and-port-dependent", no, no, nil},
	lab.FullCone:           {"full-cone", "endpoint-independent", "endpoint-independent", yes, no, no},
	lab.RestrictedCone:     {"restricted-cone", "endpoint-independent", "address-dependent", yes, no, no},
	lab.PortRestrictedCone: {"port-restricted-cone", "endpoint-independent", "address-and-port-dependent", yes, no, no},
	lab.Symmetric:          {"symmetric", "address-and-port-dependent", "address-and-port-dependent", yes, no, no},
	lab.UDPBlocked:         {"udp-blocked", "unknown", "unknown", yes, nil, nil},
	lab.DoubleNAT:          {"port-restricted-cone", "endpoint-independent", "address-and-port-dependent", yes, yes, no},
	lab.Hairpin:            {"port-restricted-cone", "endpoint-independent", "address-and-port-dependent", yes, no, yes},
}

// startCoturn runs coturn as a STUN-only server on both lab server IPs
// (with RFC 5780 unless extra says otherwise) and waits until it answers.
func startCoturn(t *testing.T, l *lab.Lab, bin string, extra ...string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "turnserver.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-c", empty, "-S", "-n", "--no-cli", "--no-tls", "--no-dtls", "--log-file", "stdout",
		"-L", l.ServerIPs[0].String(), "-L", l.ServerIPs[1].String()}, extra...)
	l.Start(t, l.Internet, "turnserver", args...)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := l.Command(context.Background(), l.Internet, bin, "whoami", "--timeout", "300ms",
			"-s", l.ServerIPs[0].String(), "-s", l.ServerIPs[1].String()).Output()
		if err == nil && len(out) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("coturn did not answer within 10 s")
}

// runType runs `natcheck type --json` in the client namespace.
func runType(t *testing.T, l *lab.Lab, bin string, servers ...string) report.TypeJSON {
	t.Helper()
	args := []string{"type", "--json", "--timeout", "5s"}
	for _, s := range servers {
		args = append(args, "-s", s)
	}
	out, err := l.Command(context.Background(), l.Client, bin, args...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(interface{ Error() string }); ok {
			stderr = ee.Error()
		}
		t.Fatalf("natcheck type: %v %s\nstdout: %s", err, stderr, out)
	}
	var got report.TypeJSON
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	return got
}

func checkBool(t *testing.T, name string, got tri.Bool, want *bool) bool {
	t.Helper()
	if want == nil {
		return true
	}
	if got != tri.Of(*want) {
		g := "null"
		if got != tri.Unknown {
			g = map[tri.Bool]string{tri.Yes: "true", tri.No: "false"}[got]
		}
		t.Errorf("%s = %s, want %v", name, g, *want)
		return false
	}
	return true
}

// TestTypeLab: every topology gets its known verdict, from coturn with two
// addresses (RFC 5780) and from natcheck's own server.
func TestTypeLab(t *testing.T) {
	lab.Require(t)
	bin := lab.BuildNatcheck(t)
	servers := []struct {
		name  string
		start func(*testing.T, *lab.Lab)
	}{
		{"coturn", func(t *testing.T, l *lab.Lab) { startCoturn(t, l, bin) }},
		{"natcheck-serve", func(t *testing.T, l *lab.Lab) { natcheckServe(t, l) }},
	}
	for _, srv := range servers {
		for _, kind := range lab.Kinds {
			want := typeVerdicts[kind]
			t.Run(srv.name+"/"+string(kind), func(t *testing.T) {
				l := lab.New(t, lab.Options{Kind: kind})
				srv.start(t, l)
				got := runType(t, l, bin, l.ServerIPs[0].String())
				if got.Type != want.typ || got.Mapping != want.mapping || got.Filtering != want.filtering {
					t.Errorf("type=%s mapping=%s filtering=%s, want %s %s %s\nevidence:\n  %s",
						got.Type, got.Mapping, got.Filtering, want.typ, want.mapping, want.filtering, strings.Join(got.Evidence, "\n  "))
				}
				checkBool(t, "nat", got.NAT, want.nat)
				if !checkBool(t, "cgnat", got.CGNAT, want.cgnat) {
					t.Logf("hops: %+v server_ttl %d\nevidence:\n  %s", got.Hops, got.ServerTTL, strings.Join(got.Evidence, "\n  "))
				}
				checkBool(t, "hairpinning", got.Hairpinning, want.hairpin)
				if got.PublicIP != l.PublicIP.String() {
					t.Errorf("public_ip = %s, want %s", got.PublicIP, l.PublicIP)
				}
			})
		}
	}
}

// TestTypeLabPlainServers: with coturn --no-rfc5780 on both addresses,
// mapping is still right (from two servers on different IPs) and
// filtering is honestly unknown.
func TestTypeLabPlainServers(t *testing.T) {
	lab.Require(t)
	bin := lab.BuildNatcheck(t)
	cases := []struct {
		kind     lab.Kind
		typ      nat.NATType
		mappings []nat.Mapping // acceptable: a symmetric NAT's port dependence needs a second port
	}{
		{lab.PortRestrictedCone, "unknown", []nat.Mapping{"endpoint-independent"}},
		{lab.FullCone, "unknown", []nat.Mapping{"endpoint-independent"}},
		{lab.Symmetric, "symmetric", []nat.Mapping{"address-and-port-dependent", "unknown"}},
		{lab.NoNAT, "unknown", []nat.Mapping{"endpoint-independent"}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			l := lab.New(t, lab.Options{Kind: c.kind})
			startCoturn(t, l, bin, "--no-rfc5780")
			got := runType(t, l, bin, l.ServerIPs[0].String(), l.ServerIPs[1].String())
			okMapping := false
			for _, m := range c.mappings {
				okMapping = okMapping || got.Mapping == m
			}
			if got.Type != c.typ || !okMapping || got.Filtering != "unknown" || got.RFC5780 != "absent" {
				t.Errorf("type=%s mapping=%s filtering=%s rfc5780=%s, want %s %v unknown absent\nevidence:\n  %s",
					got.Type, got.Mapping, got.Filtering, got.RFC5780, c.typ, c.mappings, strings.Join(got.Evidence, "\n  "))
			}
		})
	}
}

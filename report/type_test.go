package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func TestTypeJSONKeepsNotTestedApartFromFalse(t *testing.T) {
	r := &probe.TypeResult{Verdict: nat.Verdict{Type: nat.TypeFullCone, NAT: tri.No, Hairpinning: tri.No,
		Public: netip.MustParseAddrPort("[::ffff:203.0.113.2]:4000")}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, NewTypeJSON(stunclient.IPv4, r)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	cases := map[string]any{"schema_version": float64(SchemaVersion), "nat": false, "hairpinning": false,
		"cgnat": nil, "alg": nil, "port_preservation": nil, "public_ip": "203.0.113.2", "type": "full-cone"}
	for k, want := range cases {
		t.Run(k, func(t *testing.T) {
			got, ok := m[k]
			if !ok || got != want {
				t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
			}
		})
	}
	for _, k := range []string{"tests", "hops", "evidence", "server_addresses"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("%s should be a list, never null: %s", k, strings.TrimSpace(buf.String()))
		}
	}
}

// Without NAT hairpinning does not apply: the text says so rather than
// "not tested", although the hairpin test ran and its datagram came back.
func TestTypeTextHairpinWithoutNAT(t *testing.T) {
	r := &probe.TypeResult{Verdict: nat.Verdict{Type: nat.TypeOpenInternet, NAT: tri.No,
		Public: netip.MustParseAddrPort("127.0.0.1:4000")},
		Observations: nat.Observations{Tests: []nat.TestResult{{Name: nat.TestHairpin, Replied: true}}}}
	var buf bytes.Buffer
	if err := TypeText(&buf, r, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "hairpinning        does not apply (no NAT)\n") {
		t.Errorf("text:\n%s", buf.String())
	}
	r.Verdict.NAT = tri.Unknown
	buf.Reset()
	TypeText(&buf, r, false)
	if !strings.Contains(buf.String(), "hairpinning        not tested / unknown\n") {
		t.Errorf("text with NAT unknown:\n%s", buf.String())
	}
}

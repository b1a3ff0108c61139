package cmd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
)

// Listing never touches the network: it prints the built-in list (here the
// tests' stand-in for it).
func TestServersListsDefaults(t *testing.T) {
	out, _, code := execute(t, nil, "servers")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var want []string
	for _, s := range testServers() {
		want = append(want, s.Input)
	}
	if strings.TrimSpace(out) != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}
}

func TestServersProbeJSON(t *testing.T) {
	live := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	dead := stuntest.Dead(t, "127.0.0.2")
	out, _, code := execute(t, nil, "servers", "--probe", "--json", "--timeout", "800ms",
		"-s", live.Addr.String(), "-s", dead.String())
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var doc report.ServersJSONDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !doc.Probed || len(doc.Servers) != 2 || doc.SchemaVersion != report.SchemaVersion {
		t.Fatalf("doc %+v", doc)
	}
	a, d := doc.Servers[0], doc.Servers[1]
	if a.Reachable != tri.Yes || a.RTTMs == nil || a.RFC5780 != nat.RFC5780Absent || a.MappedAddress == "" {
		t.Errorf("live server: %+v", a)
	}
	if d.Reachable != tri.No || d.RTTMs != nil || d.Error == "" {
		t.Errorf("dead server: %+v", d)
	}
}

func TestServersProbeText(t *testing.T) {
	live := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, _, code := execute(t, nil, "servers", "--probe", "-s", live.Addr.String())
	if code != ExitOK || !strings.HasPrefix(out, "SERVER") || !strings.Contains(out, live.Addr.String()) || !strings.Contains(out, "absent") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

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

// A $NATCHECK_SERVERS naming no server counts as unset, as an empty one:
// the built-in list is used. An empty --server is bad usage naming it.
func TestBlankServersEnvIsUnset(t *testing.T) {
	want, _, _ := execute(t, nil, "servers")
	for _, v := range []string{"", "   ", ",,,", " , \t"} {
		out, errOut, code := execute(t, map[string]string{ServersEnv: v}, "servers")
		if code != ExitOK || out != want || errOut != "" {
			t.Errorf("%s=%q: exit %d, stdout %q, stderr %q; want the built-in list", ServersEnv, v, code, out, errOut)
		}
	}
	_, errOut, code := execute(t, nil, "whoami", "-s", " , ")
	if code != ExitUsage || !strings.Contains(errOut, "--server names no STUN server") {
		t.Errorf("-s ' , ': exit %d, stderr %q", code, errOut)
	}
}

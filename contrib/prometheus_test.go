package contrib

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/server"
)

var rulesFile = filepath.Join("prometheus", "natcheck-serve.rules.yml")

// TestAlertRules runs promtool on the alert rules docs/serve.md shows:
// their syntax, and their unit tests (each alert fires for a broken
// instance and not for a healthy one, natcheck-serve.rules.test.yml).
func TestAlertRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "natcheck-serve.rules.yml"},
		{"test", "rules", "natcheck-serve.rules.test.yml"},
	} {
		c := exec.Command(promtool, args...)
		c.Dir = "prometheus"
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// selectorRE finds the natcheck and process series the rules select, with
// their label matchers.
var selectorRE = regexp.MustCompile(`\b((?:natcheck_serve|process)_[a-z_]+)(\{[^}]*\})?`)

// TestAlertRulesMetricsExist checks every series the rules select, and
// each label value they match on, against what a real server exposes:
// an alert on a metric or reason that does not exist would never fire,
// and promtool's own tests cannot tell.
func TestAlertRulesMetricsExist(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := testutil.StartServer(t, server.Listen, server.Config{
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Batch: 1, Workers: 1, Rendezvous: true,
	})
	var exposition bytes.Buffer
	s.WriteMetrics(&exposition)
	lines := strings.Split(exposition.String(), "\n")

	found := 0
	for _, m := range selectorRE.FindAllStringSubmatch(string(rules), -1) {
		name, matchers := m[1], strings.Trim(m[2], "{}")
		var series []string
		for _, l := range lines {
			if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
				series = append(series, l)
			}
		}
		if len(series) == 0 {
			t.Errorf("the rules use %s, which the server does not expose", name)
			continue
		}
		found++
		for _, mt := range strings.Split(matchers, ",") {
			mt = strings.TrimSpace(mt)
			if mt == "" || strings.HasPrefix(mt, "job=") {
				continue // job is Prometheus's label, not the server's
			}
			if strings.Contains(mt, "!=") || strings.Contains(mt, "=~") || strings.Contains(mt, "!~") {
				t.Errorf("%s{%s}: only = matchers are checked here", name, matchers)
				continue
			}
			ok := false
			for _, l := range series {
				ok = ok || strings.Contains(l, mt)
			}
			if !ok {
				t.Errorf("%s has no series with %s:\n%s", name, mt, strings.Join(series, "\n"))
			}
		}
	}
	if found < 6 {
		t.Errorf("only %d selectors checked: is the rules file read right?", found)
	}
}

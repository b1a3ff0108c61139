package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// ---- fixtures of --every and --format prometheus ---------------------------

// everyStep is one run of a --every sequence, as the command hands it to
// EveryPrinter.
type everyStep struct {
	facts   []every.Fact
	summary string
	doc     any
}

var everyStart = time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC)

// printEvery prints steps one minute apart, as `--every 1m` does, with
// seq the schedule's numbers (a gap is a skipped run).
func printEvery(w io.Writer, asJSON bool, seqs []int, steps []everyStep) error {
	p := &EveryPrinter{Out: w, JSON: asJSON}
	for i, s := range steps {
		at := everyStart.Add(time.Duration(seqs[i]-1) * time.Minute).Add(time.Duration(i) * 3 * time.Millisecond)
		if err := p.Print(seqs[i], at, s.facts, s.summary, s.doc); err != nil {
			return err
		}
	}
	return nil
}

func whoamiStep(w *probe.WhoAmI) everyStep {
	return everyStep{WhoAmIFacts(w), WhoAmISummary(w), NewWhoAmIJSON(w)}
}

func failedStep(err error, code int) everyStep {
	f, s, d := FailedRun(err, code)
	return everyStep{f, s, d}
}

// fxWhoAmIMoved is fxWhoAmIAgree after the ISP gave the router another
// address; the third server, which whoami skipped before, now answered.
func fxWhoAmIMoved() *probe.WhoAmI {
	w := fxWhoAmIAgree()
	w.Public, w.Elapsed = ap("198.51.100.7:34470"), ms(98.1)
	for i := range w.Servers {
		w.Servers[i].Mapped = w.Public
	}
	w.Servers[2] = probe.ServerResult{Server: server("203.0.113.99"), Address: ap("203.0.113.99:3478"), Status: probe.StatusNoAnswer,
		Err: errors.New("context deadline exceeded")}
	return w
}

// fxWhoAmIEvery is `whoami --every 1m`: two quiet runs, an outage, a
// skipped slot, then answers from another public address.
func fxWhoAmIEvery() ([]int, []everyStep) {
	quiet := fxWhoAmIAgree()
	quiet.Elapsed = ms(104.2)
	return []int{1, 2, 3, 5}, []everyStep{
		whoamiStep(fxWhoAmIAgree()),
		whoamiStep(quiet),
		failedStep(errors.New("no STUN server answered (203.0.113.10: no-answer, 203.0.113.11:3478: no-answer, 203.0.113.99: no-answer); the host may be offline, or this traffic blocked"), 3),
		whoamiStep(fxWhoAmIMoved()),
	}
}

// fxTypeEvery is `type --every 10m`: the NAT turned symmetric, then UDP
// was blocked.
func fxTypeEvery() ([]int, []everyStep) {
	step := func(r *probe.TypeResult) everyStep {
		return everyStep{TypeFacts(r), TypeSummary(r, nil), NewTypeJSON(stunclient.IPv4, r)}
	}
	return []int{1, 2, 3}, []everyStep{step(fxType()), step(fxTypeSymmetric()), step(fxTypeUDPBlocked())}
}

// fxReportEvery is `report --every 1h`: every check fine, then little.
func fxReportEvery() ([]int, []everyStep) {
	step := func(in FullInput) everyStep { return everyStep{FullFacts(in), FullSummary(in), NewFullJSON(in)} }
	return []int{1, 2}, []everyStep{step(fxReport()), step(fxReportFailed())}
}

func promRun(command string, elapsed time.Duration) PromRun {
	return PromRun{Command: command, At: everyStart, Elapsed: elapsed}
}

// everyGoldens are the outputs of --every and --format prometheus.
func everyGoldens() []golden {
	every := func(file string, asJSON bool, fx func() ([]int, []everyStep)) golden {
		return golden{file, func(w io.Writer) error { seqs, steps := fx(); return printEvery(w, asJSON, seqs, steps) }}
	}
	return []golden{
		// natcheck whoami|type|report --every D [--json]
		every("whoami-every.txt", false, fxWhoAmIEvery),
		every("whoami-every.jsonl", true, fxWhoAmIEvery),
		every("type-every.txt", false, fxTypeEvery),
		every("type-every.jsonl", true, fxTypeEvery),
		every("report-every.txt", false, fxReportEvery),

		// natcheck whoami|type|report --format prometheus
		{"whoami.prom", func(w io.Writer) error {
			return WhoAmIPrometheus(w, promRun("whoami", ms(105.3)), stunclient.IPv4, fxWhoAmIAgree())
		}},
		{"whoami-failed.prom", func(w io.Writer) error {
			return WhoAmIPrometheus(w, promRun("whoami", ms(3000.4)), stunclient.IPv4, nil)
		}},
		{"type.prom", func(w io.Writer) error {
			return TypePrometheus(w, promRun("type", ms(270.4)), stunclient.IPv4, fxType(), nil, nil)
		}},
		{"type-runs-lifetime.prom", func(w io.Writer) error {
			r, runs := fxTypeRuns()
			return TypePrometheus(w, promRun("type", ms(23102.4)), stunclient.IPv4, r, runs, fxLifetime())
		}},
		{"type-udp-blocked.prom", func(w io.Writer) error {
			return TypePrometheus(w, promRun("type", ms(1302.9)), stunclient.IPv4, fxTypeUDPBlocked(), nil, nil)
		}},
		{"report.prom", func(w io.Writer) error { return FullPrometheus(w, fxReport()) }},
		{"report-failed.prom", func(w io.Writer) error { return FullPrometheus(w, fxReportFailed()) }},
		{"report-turn.prom", func(w io.Writer) error { return FullPrometheus(w, fxReportTurn()) }},
	}
}

// ---- checks beyond the byte-for-byte comparison ------------------------------

// Every line of --every --json is one JSON object with the time, the
// run's number and what changed before the document's own fields, which
// include schema_version: JSON Lines.
func TestEveryJSONLines(t *testing.T) {
	for _, file := range []string{"whoami-every.jsonl", "type-every.jsonl"} {
		t.Run(file, func(t *testing.T) {
			out := renderGolden(t, file)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			for i, line := range lines {
				var m map[string]any
				dec := json.NewDecoder(strings.NewReader(line))
				if err := dec.Decode(&m); err != nil || dec.More() {
					t.Fatalf("line %d is not one JSON object (%v): %s", i+1, err, line)
				}
				if !strings.HasPrefix(line, `{"time":"`) {
					t.Errorf("line %d does not start with the time: %.60s", i+1, line)
				}
				if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
					t.Errorf("line %d: time %q: %v", i+1, m["time"], err)
				}
				if m["schema_version"] != float64(SchemaVersion) || m["sequence"] == nil {
					t.Errorf("line %d: schema_version %v, sequence %v", i+1, m["schema_version"], m["sequence"])
				}
				if changed, ok := m["changed"]; !ok || (i == 0) != (changed == nil) {
					t.Errorf("line %d: changed = %v (present %v); want null on the first line only", i+1, changed, ok)
				}
			}
		})
	}
}

// The fields --every adds must not collide with a document's own: a JSON
// object with a key twice is read differently by different parsers.
func TestEveryFieldsAreNotDocumentFields(t *testing.T) {
	docs := map[string]any{
		"whoami": NewWhoAmIJSON(fxWhoAmIDisagree()), "type": NewTypeWithLifetimeJSON(stunclient.IPv4, fxType(), fxLifetime(), nil),
		"report": NewFullJSON(fxReport()), "error": NewRunErrorJSON(errors.New("x"), 3),
	}
	for name, doc := range docs {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"time", "sequence", "changed"} {
			if _, ok := m[k]; ok {
				t.Errorf("the %s document has a field %q of its own", name, k)
			}
		}
	}
}

// EveryJSON writes each run in one Write call: an interrupt between two
// runs never leaves a partial line.
func TestEveryWritesOneLineAtOnce(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var w countingWriter
		seqs, steps := fxWhoAmIEvery()
		if err := printEvery(&w, asJSON, seqs, steps); err != nil {
			t.Fatal(err)
		}
		for i, chunk := range w.writes {
			if strings.Count(chunk, "\n") != 1 || !strings.HasSuffix(chunk, "\n") {
				t.Errorf("json %v: write %d is not one whole line: %q", asJSON, i+1, chunk)
			}
		}
		if len(w.writes) != len(steps) {
			t.Errorf("json %v: %d writes for %d runs", asJSON, len(w.writes), len(steps))
		}
	}
}

type countingWriter struct{ writes []string }

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes = append(w.writes, string(b))
	return len(b), nil
}

// promtool runs Prometheus' own checker; a test needing it skips without
// it unless NATCHECK_LAB=1 (as CI runs, with the prometheus package
// installed), where a missing promtool fails.
func promtool(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "promtool", "prometheus"), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Every .prom golden passes `promtool check metrics` (its parser and its
// lint: help text, naming, units) and keeps what node_exporter's textfile
// collector needs: no timestamps, each metric's samples together.
func TestPrometheusPromtool(t *testing.T) {
	for _, g := range everyGoldens() {
		if !strings.HasSuffix(g.file, ".prom") {
			continue
		}
		t.Run(g.file, func(t *testing.T) {
			out := g.output(t)
			if msg := promtool(t, out, "check", "metrics"); strings.TrimSpace(msg) != "" {
				t.Errorf("promtool check metrics: %s", msg)
			}
			checkTextfile(t, string(out))
		})
	}
}

var sampleLine = regexp.MustCompile(`^(natcheck_[a-z0-9_]+)(\{[^}]*\})? (\S+)$`)

// checkTextfile checks the textfile collector's rules promtool does not:
// no sample has a timestamp, and a metric's samples are not split.
func checkTextfile(t *testing.T, out string) {
	t.Helper()
	done := map[string]bool{}
	current := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a natcheck sample without timestamp: %q", line)
			continue
		}
		if m[1] != current {
			if done[m[1]] {
				t.Errorf("samples of %s are split", m[1])
			}
			done[current], current = true, m[1]
		}
	}
}

// The alert rules shipped in contrib/prometheus pass `promtool check
// rules`, their unit tests (`promtool test rules`: the alerts fire on
// series shaped like natcheck's output, and stay silent otherwise), and
// name only metrics natcheck writes.
func TestPrometheusRules(t *testing.T) {
	dir := filepath.Join("..", "contrib", "prometheus")
	rules := filepath.Join(dir, "natcheck.rules.yml")
	promtool(t, nil, "check", "rules", rules)
	promtool(t, nil, "test", "rules", filepath.Join(dir, "natcheck.rules.test.yml"))
	text, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`natcheck_[a-z0-9_]+`).FindAllString(string(text), -1) {
		if _, ok := metricHelp[name]; !ok {
			t.Errorf("%s uses %s, which natcheck does not write", rules, name)
		}
	}
}

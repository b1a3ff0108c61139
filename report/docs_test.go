package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDocsExamples keeps the output examples in docs/*.md and README.md
// true to what natcheck prints.
//
// Every example below names a documentation file, the example in it (by
// its "$ command" line, or by the start of its first line), and the golden
// rendering (golden_test.go) it shows. The fixture behind that golden
// carries the same lab values as the example, so the example can be
// compared with real output rather than with a second copy of it:
//
//   - Text examples must equal the rendered lines, in order, one for one
//     (trailing spaces ignored). A line that is just "..." stands for any
//     number of left-out lines, and a line ending in " ..." for any line
//     starting with what precedes it. An example of `| head -N` is compared
//     with the first N lines. So a label, a value, the column alignment or
//     the wording of an evidence line ("after 6 transmissions" when natcheck
//     now counts 12) that drifts fails the test, naming the docs line.
//   - JSON examples must have the same shape as the rendered document:
//     the same keys, recursively (every key shown exists in the output and
//     every key of the output is shown), the same kind of value (string,
//     number, bool, null, object, array), arrays of the same length, and the
//     same strings and bools (enum values such as "answered" or
//     "rfc5780-response-port"). Numbers are only checked to be numbers, so
//     "253.0" and 253 compare equal. An example of a jq selection only needs
//     its keys to exist, with the same values.
//
// When the output changes on purpose, update the golden files, then the
// examples the test names.
func TestDocsExamples(t *testing.T) {
	for _, ex := range []struct {
		file   string // relative to the repository root
		cmd    string // the example's "$ " command line, or ""
		first  string // without cmd: the start of the example's first line
		golden string
		head   int  // compare with the first head lines only (`| head -N`)
		subset bool // JSON: a jq selection of the document
	}{
		{file: "docs/turn.md", cmd: "natcheck turn -s turn:turn.example.net --user alice --password-file pw.txt", golden: "turn.txt"},
		{file: "docs/turn.md", cmd: "natcheck turn -v -s turn:turn.example.net -s 'turns:turn.example.net:443?transport=tcp' --user alice", golden: "turn-verbose.txt"},
		{file: "README.md", cmd: "natcheck whoami", golden: "whoami.txt"},
		{file: "README.md", cmd: "natcheck whoami -v -s 203.0.113.10 -s 203.0.113.11 -s 203.0.113.99", golden: "whoami-agree-verbose.txt"},
		{file: "README.md", cmd: "natcheck whoami --json -s 203.0.113.10 | jq -c '{public_ip, nat, local_ip}'", golden: "whoami.json", subset: true},
		{file: "README.md", cmd: "natcheck type -s 203.0.113.10 | head -1", golden: "type.txt", head: 1},
		{file: "README.md", cmd: "natcheck report --format markdown -s 203.0.113.10 | head -12", golden: "report.md", head: 12},
		{file: "docs/json.md", first: "{", golden: "whoami.json"},
		{file: "docs/type.md", first: "port-restricted-cone (", golden: "type.txt"},
		{file: "docs/type.md", cmd: "natcheck type --runs 5 -s 203.0.113.10", golden: "type-runs.txt"},
		{file: "docs/type.md", cmd: "natcheck type --runs 5 --json -s 203.0.113.10 | jq -c '{type, agreement}'", golden: "type-runs.json", subset: true},
		{file: "docs/portmap.md", first: "{", golden: "portmap.json"},
		{file: "docs/ipv6.md", cmd: "natcheck ipv6 -s stun.example.net", golden: "ipv6-routed.txt"},
		{file: "docs/ipv6.md", cmd: "natcheck ipv6 -s stun.example.net      # behind a NAT66 router", golden: "ipv6.txt"},
		{file: "docs/ipv6.md", first: "{", golden: "ipv6.json"},
		{file: "docs/tcp.md", cmd: "natcheck tcp -s stun.example.net", golden: "tcp.txt"},
		{file: "docs/tcp.md", first: "{", golden: "tcp.json"},
		{file: "docs/lifetime.md", cmd: "natcheck lifetime -s stun.example.net", golden: "lifetime.txt"},
		{file: "docs/lifetime.md", first: "{", golden: "lifetime.json"},
		{file: "docs/peer.md", cmd: "natcheck peer AQEWl3Jr...", golden: "peer.txt"},
		{file: "docs/peer.md", cmd: "natcheck peer --answer answer.txt", golden: "peer-failed.txt"},
		{file: "docs/peer.md", cmd: "natcheck peer AQEWl3Jr...     # two port-restricted cones", golden: "peer-mismatch.txt"},
		{file: "docs/peer.md", cmd: "natcheck peer --turn turn:turn.example.net --user alice AQEWl3Jr...", golden: "peer-relayed.txt"},
		{file: "docs/peer.md", first: "{", golden: "peer-failed.json"},
		{file: "docs/monitoring.md", cmd: "natcheck whoami --every 1m -s 203.0.113.10 -s 203.0.113.11:3478 -s 203.0.113.99", golden: "whoami-every.txt"},
		{file: "docs/monitoring.md", cmd: "natcheck whoami --format prometheus -s 203.0.113.10 -s 203.0.113.11:3478 -s 203.0.113.99", golden: "whoami.prom"},
	} {
		name := ex.file + ": " + ex.cmd + ex.first
		t.Run(name, func(t *testing.T) {
			doc, line := findExample(t, ex.file, ex.cmd, ex.first)
			got := renderGolden(t, ex.golden)
			where := fmt.Sprintf("%s:%d", ex.file, line)
			if strings.HasSuffix(ex.golden, ".json") {
				compareJSONExample(t, where, strings.Join(doc, "\n"), got, ex.subset)
				return
			}
			real := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if ex.head > 0 && len(real) > ex.head {
				real = real[:ex.head]
			}
			compareTextExample(t, where, line, doc, real)
		})
	}
}

// example is the output part of a code block: after a "$ command" line up
// to the next one, or the whole block when it has none.
type example struct {
	cmd   string
	line  int // of the first output line in the file
	lines []string
}

// findExample returns the output lines of the example and the line in the
// file where they start.
func findExample(t *testing.T, file, cmd, first string) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples(string(b)) {
		if cmd != "" && ex.cmd == cmd || cmd == "" && ex.cmd == "" && len(ex.lines) > 0 && strings.HasPrefix(ex.lines[0], first) {
			return ex.lines, ex.line
		}
	}
	t.Fatalf("%s has no example %q%q any more: fix the test's list", file, cmd, first)
	return nil, 0
}

// examples splits a Markdown file's code blocks (fenced, or indented by
// four spaces) into examples.
func examples(md string) []example {
	var out []example
	var cur *example
	flush := func() {
		if cur != nil {
			for len(cur.lines) > 0 && strings.TrimSpace(cur.lines[len(cur.lines)-1]) == "" {
				cur.lines = cur.lines[:len(cur.lines)-1]
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	add := func(n int, l string) {
		if cmd, ok := strings.CutPrefix(l, "$ "); ok {
			flush()
			cur = &example{cmd: strings.TrimSpace(cmd), line: n + 1}
			return
		}
		if cur == nil {
			cur = &example{line: n}
		}
		cur.lines = append(cur.lines, l)
	}
	fenced, indented := false, false
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		n := i + 1
		switch {
		case strings.HasPrefix(l, "```"):
			flush()
			fenced = !fenced
		case fenced:
			add(n, l)
		case strings.HasPrefix(l, "    ") && (indented || i == 0 || strings.TrimSpace(lines[i-1]) == ""):
			indented = true
			add(n, l[4:])
		case indented && strings.TrimSpace(l) == "":
			// a blank line inside an indented block
		default:
			if indented {
				flush()
			}
			indented = false
		}
	}
	flush()
	return out
}

// compareTextExample checks docs lines against rendered lines (see
// TestDocsExamples for the rules).
func compareTextExample(t *testing.T, where string, line int, doc, real []string) {
	t.Helper()
	j := 0 // next rendered line
	skip := false
	for i, d := range doc {
		d = strings.TrimRight(d, " ")
		at := fmt.Sprintf("%s:%d", where[:strings.LastIndex(where, ":")], line+i)
		if strings.TrimSpace(d) == "..." {
			skip = true
			continue
		}
		prefix, partial := strings.CutSuffix(d, " ...")
		match := func(r string) bool {
			r = strings.TrimRight(r, " ")
			if partial {
				return strings.HasPrefix(r, prefix)
			}
			return r == d
		}
		k := j
		for skip && k < len(real) && !match(real[k]) {
			k++
		}
		if k >= len(real) {
			t.Errorf("%s: natcheck prints no such line (any more)\n  docs: %s", at, d)
			return
		}
		if !match(real[k]) {
			t.Errorf("%s: docs and output differ\n  docs:   %s\n  output: %s", at, d, strings.TrimRight(real[k], " "))
			return
		}
		j, skip = k+1, false
	}
	if !skip && j < len(real) {
		t.Errorf("%s: the example ends before the output; next output line: %s", where, real[j])
	}
}

// compareJSONExample checks a docs JSON example against a rendering.
func compareJSONExample(t *testing.T, where, doc, got string, subset bool) {
	t.Helper()
	var d, g any
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("%s: the example is not valid JSON: %v", where, err)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatal(err)
	}
	for _, p := range jsonShapeDiff("", d, g, subset) {
		t.Errorf("%s: %s", where, p)
	}
}

// jsonShapeDiff lists how doc differs in shape from real.
func jsonShapeDiff(path string, doc, real any, subset bool) []string {
	kind := func(v any) string {
		if v == nil {
			return "null"
		}
		return map[reflect.Kind]string{reflect.Map: "object", reflect.Slice: "array", reflect.String: "string",
			reflect.Float64: "number", reflect.Bool: "bool"}[reflect.TypeOf(v).Kind()]
	}
	if kind(doc) != kind(real) {
		return []string{fmt.Sprintf("%s is %s in the docs, %s in the output", orRoot(path), kind(doc), kind(real))}
	}
	var out []string
	switch d := doc.(type) {
	case map[string]any:
		r := real.(map[string]any)
		for k, v := range d {
			if rv, ok := r[k]; ok {
				out = append(out, jsonShapeDiff(path+"."+k, v, rv, subset)...)
			} else {
				out = append(out, fmt.Sprintf("%s%s is in the docs, not in the output", path+".", k))
			}
		}
		for k := range r {
			if _, ok := d[k]; !ok && !subset {
				out = append(out, fmt.Sprintf("%s%s is in the output, not in the docs", path+".", k))
			}
		}
	case []any:
		r := real.([]any)
		if len(d) != len(r) {
			return []string{fmt.Sprintf("%s has %d entries in the docs, %d in the output", path, len(d), len(r))}
		}
		for i := range d {
			out = append(out, jsonShapeDiff(fmt.Sprintf("%s[%d]", path, i), d[i], r[i], subset)...)
		}
	case string, bool:
		if doc != real {
			out = append(out, fmt.Sprintf("%s is %q in the docs, %q in the output", path, fmt.Sprint(doc), fmt.Sprint(real)))
		}
	}
	return out
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

package cmd

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/natcheck/natcheck/report"
)

// The golden files of `natcheck version` (the other commands' documents
// are rendered by the report package and checked in report/golden_test.go).
// Rewrite them after a deliberate change with
//
//	go test ./cmd -run Golden -update

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

func TestVersionGolden(t *testing.T) {
	release := versionInfo{SchemaVersion: report.SchemaVersion, Version: "v0.9.0", GoVersion: "go1.26.8"}
	devel := versionInfo{SchemaVersion: report.SchemaVersion, Version: "(devel)", GoVersion: "go1.26.8",
		Revision: "e9db595c3b1f0a8d4e2f7a6b5c4d3e2f1a0b9c8d", Modified: true}
	for _, g := range []struct {
		file   string
		v      versionInfo
		asJSON bool
	}{
		{"version.json", release, true},
		{"version.txt", release, false},
		{"version-devel.json", devel, true},
		{"version-devel.txt", devel, false},
	} {
		t.Run(g.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeVersion(&b, g.v, g.asJSON); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./cmd -run Golden -update` to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", path, b.Bytes(), want)
			}
			if !g.asJSON {
				return
			}
			// docs/json.md: schema_version, version, go_version, and
			// revision and modified when the build recorded them.
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			keys := []string{"schema_version", "version", "go_version"}
			if g.v.Revision != "" {
				keys = append(keys, "revision", "modified")
			}
			if len(m) != len(keys) {
				t.Errorf("keys %v, want exactly %v", m, keys)
			}
			for _, k := range keys {
				if _, ok := m[k]; !ok {
					t.Errorf("no %q: %s", k, b.Bytes())
				}
			}
			if m["schema_version"] != float64(report.SchemaVersion) {
				t.Errorf("schema_version = %v", m["schema_version"])
			}
		})
	}
}

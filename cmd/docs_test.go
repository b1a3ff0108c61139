package cmd

import (
	"os"
	"path/filepath"
	"testing"
)

// The committed command reference must match the commands: a changed flag
// or help text without regenerated docs fails here.
func TestGeneratedDocsAreCurrent(t *testing.T) {
	tmp := t.TempDir()
	md, man := filepath.Join(tmp, "cli"), filepath.Join(tmp, "man")
	if err := WriteDocs(md, man); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{md, "../docs/cli"}, {man, "../docs/man"}} {
		want := readDir(t, pair[0])
		got := readDir(t, pair[1])
		for name, content := range want {
			if got[name] != content {
				t.Errorf("%s/%s is stale or missing: run 'go run ./internal/gendocs'", pair[1], name)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("%s/%s documents no command: run 'go run ./internal/gendocs'", pair[1], name)
			}
		}
	}
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

package nat

import (
	"os/exec"
	"strings"
	"testing"
)

// pureDeps are the natcheck packages nat may use: value types, no I/O.
var pureDeps = map[string]bool{"github.com/natcheck/natcheck/internal/tri": true}

// TestNoIO keeps the package a leaf that does no I/O: it may import only
// the standard library and pureDeps, never the network (net, net/* but net/netip)
// even transitively, and not os or syscall directly. (os and syscall are
// reached transitively through fmt and time, which is not I/O by this
// package.)
func TestNoIO(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	list := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Skipf("go list: %v", err)
		}
		return strings.Fields(string(out))
	}
	self := list(".")[0]
	for _, p := range list("-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".") {
		if p != self && !pureDeps[p] {
			t.Errorf("imports non-standard package %s", p)
		}
	}
	for _, p := range list("-deps", ".") {
		if p == "net" || (strings.HasPrefix(p, "net/") && p != "net/netip") {
			t.Errorf("imports network package %s (transitively)", p)
		}
	}
	for _, p := range list("-f", `{{join .Imports " "}}`, ".") {
		if p == "os" || strings.HasPrefix(p, "os/") || p == "syscall" || p == "unsafe" || strings.HasPrefix(p, "golang.org/") {
			t.Errorf("imports %s", p)
		}
	}
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/natcheck/natcheck/internal/testutil"
)

// Require skips t, saying why, unless the lab can run here: Linux, root and
// the tools ip, nft and iptables. With NATCHECK_LAB=1 (set by CI) a missing
// prerequisite fails the test instead, so CI never passes by skipping.
// -short skips the lab (the unit tests only) unless NATCHECK_LAB=1.
func Require(t testing.TB) {
	t.Helper()
	required := os.Getenv("NATCHECK_LAB") == "1"
	if testing.Short() && !required {
		t.Skip("skipping NAT lab test: -short given (unit tests only; NATCHECK_LAB=1 runs the lab anyway)")
	}
	if reason := missing(); reason != "" {
		if required {
			t.Fatalf("NAT lab required (NATCHECK_LAB=1) but %s", reason)
		}
		t.Skipf("skipping NAT lab test: %s (the lab runs as root on Linux with iproute2, nftables and iptables; NATCHECK_LAB=1 makes this a failure)", reason)
	}
}

// missing says why the lab cannot run here, or "" if it can.
func missing() string {
	if unsupported != "" {
		return unsupported
	}
	if os.Geteuid() != 0 {
		return "not running as root (network namespaces need it)"
	}
	for _, tool := range []string{"ip", "nft", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s not found in PATH", tool)
		}
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return fmt.Sprintf("cannot create /run/netns: %v", err)
	}
	return ""
}

// Start runs name inside namespace ns in the background. At test cleanup it
// is killed and waited for; its combined output is logged if the test
// failed. Callers may Wait on it themselves, but not concurrently with cleanup.
func (l *Lab) Start(t testing.TB, ns, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := l.Command(context.Background(), ns, name, args...)
	out := &testutil.SyncBuffer{} // the child's stdout and stderr at once
	cmd.Stdout, cmd.Stderr = out, out
	// The child dies with the test process even if cleanup never runs.
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("output of %s %s (in %s):\n%s", name, strings.Join(args, " "), ns, out.String())
		}
	})
	return cmd
}

// BuildNatcheck builds the natcheck command (the module's main package) once
// per test process and returns the binary's path. When the tests run with
// -race, so is the binary, so end-to-end runs catch data races too.
func BuildNatcheck(t testing.TB) string {
	t.Helper()
	path, err := buildOnce("natcheck", ".")
	if err != nil {
		t.Fatalf("build natcheck: %v", err)
	}
	return path
}

// BuildNatcheckPlain is BuildNatcheck without the race detector, for tests
// that run many natcheck processes at once: race-instrumented binaries
// need several times the CPU, and twenty of them on a small machine make
// the machine, not the NAT or the server, what the test measures. Every
// other lab test still runs the race-instrumented binary.
func BuildNatcheckPlain(t testing.TB) string {
	t.Helper()
	path, err := buildOnce("natcheck-plain", ".")
	if err != nil {
		t.Fatalf("build natcheck: %v", err)
	}
	return path
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// buildOnce builds the package pkg (relative to the module root) into the
// process's build directory, at most once per process.
func buildOnce(name, pkg string) (string, error) {
	buildMu.Lock()
	r, ok := buildCache[name]
	if !ok {
		r = &buildResult{}
		buildCache[name] = r
	}
	buildMu.Unlock()
	r.once.Do(func() { r.path, r.err = build(name, pkg) })
	return r.path, r.err
}

func build(name, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if goBin, err = exec.LookPath(filepath.Join(os.Getenv("GOROOT"), "bin", "go")); err != nil {
			return "", errors.New("go toolchain not found in PATH")
		}
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the natcheck module")
	}
	dir := buildDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled && name != "natcheck-plain" && strings.HasPrefix(name, "natcheck") {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// buildDir holds this process's binaries; stale ones are removed by
// cleanStale once their process is gone.
func buildDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-build", namePrefix, os.Getpid()))
}

var cleanStaleOnce sync.Once

// cleanStale removes namespaces and build directories left by lab processes
// that died without cleaning up (killed test runs). It only looks at names
// of the form nclab-<pid>-..., and only when <pid> is no longer running.
func cleanStale() {
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if staleName(e.Name()) {
				_ = deleteNS(e.Name())
			}
		}
	}
	// Per-namespace /etc files (AddHosts) of namespaces gone with them.
	if ents, err := os.ReadDir(etcNetns); err == nil {
		for _, e := range ents {
			if staleName(e.Name()) {
				_ = os.RemoveAll(filepath.Join(etcNetns, e.Name()))
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if staleName(e.Name()) && strings.HasSuffix(e.Name(), "-build") {
				_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}

// staleName reports whether name belongs to a lab process that is gone.
func staleName(name string) bool {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}

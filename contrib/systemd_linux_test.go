package contrib

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/lab"
)

// verifiableUnit copies the unit (and, with dropIn, the low-port drop-in
// beside it, where systemd looks for it) into a temporary directory, with
// ExecStart's binary replaced by exe: systemd-analyze verify refuses a
// command that is not executable, and /usr/local/bin/natcheck is not
// installed here. Only that path changes; TestUnitServes runs the real
// command line. It also returns a MANPATH holding natcheck-serve(1) from
// docs/man, for the unit's Documentation= (verify runs man on it).
func verifiableUnit(t *testing.T, exe string, dropIn bool) (unit, manpath string) {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const installed = "ExecStart=/usr/local/bin/natcheck "
	if bytes.Count(data, []byte(installed)) != 1 {
		t.Fatalf("%s: want one %q line", unitFile, installed)
	}
	data = bytes.Replace(data, []byte(installed), []byte("ExecStart="+exe+" "), 1)
	unit = filepath.Join(dir, "natcheck-serve.service")
	if err := os.WriteFile(unit, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if dropIn {
		copyFile(t, lowPortFile, filepath.Join(dir, "natcheck-serve.service.d", "low-port.conf"))
	}
	manpath = filepath.Join(dir, "man")
	copyFile(t, filepath.Join("..", "docs", "man", "natcheck-serve.1"), filepath.Join(manpath, "man1", "natcheck-serve.1"))
	return unit, manpath
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnitVerify runs systemd-analyze verify on the unit, alone and with
// the low-port drop-in. verify exits 0 even for an unknown key or a value
// it cannot parse (it only warns), so any output at all fails the test.
func TestUnitVerify(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	testutil.RequireTool(t, "man", "man-db") // verify checks Documentation=man:... with it
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, dropIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop-in=%v", dropIn), func(t *testing.T) {
			unit, manpath := verifiableUnit(t, exe, dropIn)
			cmd := exec.Command(analyze, "verify", unit)
			cmd.Env = append(os.Environ(), "MANPATH="+manpath, "SYSTEMD_LOG_COLOR=0")
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d) (\S+)`)

// TestUnitSecurity holds the unit to the exposure level docs/serve.md
// reports: systemd-analyze security --offline rates it 1.1 ("OK"; 0 is
// best, 10 worst). What remains is network access, which a server needs,
// the host's root directory, and the clock device ProtectClock= lists.
// The drop-in for a low port adds one capability and the host's user
// namespace, and must still rate below 2.
func TestUnitSecurity(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dropIn bool
		most   float64
	}{{false, 1.1}, {true, 2.0}} {
		t.Run(fmt.Sprintf("drop-in=%v", tc.dropIn), func(t *testing.T) {
			unit, _ := verifiableUnit(t, exe, tc.dropIn)
			// --threshold is the exposure times ten.
			out, err := exec.Command(analyze, "security", "--offline=yes", "--man=no", "--no-pager",
				fmt.Sprintf("--threshold=%d", int(math.Round(tc.most*10))), unit).CombinedOutput()
			m := exposureRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in systemd-analyze security output (%v):\n%s", err, out)
			}
			level, _ := strconv.ParseFloat(string(m[1]), 64)
			t.Logf("exposure level %s %s", m[1], m[2])
			if err != nil || level > tc.most {
				t.Errorf("exposure level %v (%v), want at most %v:\n%s", level, err, tc.most, out)
			}
		})
	}
}

// TestUnitServes runs the unit's command line, expanded from the example
// serve.env as systemd expands it, the way the unit runs it: as a user
// that is not root, with no capabilities and no_new_privs. The example's
// addresses are the lab's server addresses (documentation range), so the
// command runs unchanged in the lab's internet namespace; a client behind a
// port-restricted-cone NAT then gets its NAT type right from it, the
// metrics answer where serve.env puts them, and SIGTERM (systemctl stop)
// ends it with exit 0.
func TestUnitServes(t *testing.T) {
	argv := serveCommand(t)
	setpriv := testutil.RequireTool(t, "setpriv", "util-linux")
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	bin := lab.BuildNatcheck(t)

	const uid = "61234" // an unused id, as DynamicUser picks one
	args := append([]string{"--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--no-new-privs",
		"--inh-caps=-all", "--bounding-set=-all", "--", bin}, argv[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := l.Command(ctx, l.Internet, setpriv, args...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	serving, ended := make(chan struct{}), make(chan struct{})
	go func() {
		// Signal the "serving" line, keep the log for failures, and say
		// when stderr ends (the server exited).
		defer close(ended)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if strings.Contains(sc.Text(), "serving STUN on") {
				close(serving)
				break
			}
		}
		_, _ = io.Copy(log, stderr)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
		if t.Failed() {
			t.Logf("natcheck %s:\n%s", strings.Join(argv[1:], " "), log.String())
		}
	})
	select {
	case <-serving:
	case <-ended:
		t.Fatal("natcheck serve exited before serving")
	case <-ctx.Done():
		t.Fatal("natcheck serve did not start serving")
	}

	// The process is natcheck itself (ip netns exec and setpriv exec it):
	// check what it runs as.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Name:\tnatcheck", "Uid:\t" + uid, "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !bytes.Contains(status, []byte(want+"\n")) && !bytes.Contains(status, []byte(want+"\t")) {
			t.Errorf("/proc/PID/status has no %q:\n%s", want, status)
		}
	}

	out, err := l.Command(ctx, l.Client, bin, "type", "-s", l.ServerIPs[0].String()).Output()
	if err != nil {
		t.Fatalf("natcheck type: %v\n%s", err, out)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); !strings.HasPrefix(first, string(lab.PortRestrictedCone)+" ") {
		t.Errorf("natcheck type against the unit's server says %q, want %s", first, lab.PortRestrictedCone)
	}

	metrics := scrape(t, l, metricsAddr(t, argv))
	if !regexp.MustCompile(`(?m)^natcheck_serve_responses_sent_total\{transport="udp",kind="success"\} [1-9]`).MatchString(metrics) {
		t.Errorf("metrics show no UDP success answered:\n%s", metrics)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = srv.Wait()
	stopped = true
	if err != nil {
		t.Errorf("natcheck serve after SIGTERM: %v (want exit 0)", err)
	}
}

// metricsAddr is the --metrics value of the unit's command line.
func metricsAddr(t *testing.T, argv []string) string {
	t.Helper()
	for i, a := range argv {
		if a == "--metrics" && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--metrics="); ok {
			return v
		}
	}
	t.Fatalf("serve.env sets no --metrics: %q", argv)
	return ""
}

// scrape fetches /metrics from addr inside the lab's internet namespace.
func scrape(t *testing.T, l *lab.Lab, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, a string) (net.Conn, error) {
			return l.Dial(l.Internet, nil, network, a)
		},
	}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	return string(body)
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/lab"
)

// watch is a natcheck --every process in the lab's client namespace whose
// stdout lines arrive one by one.
type watch struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
	all    []string // every line read so far
}

func startWatch(t *testing.T, l *lab.Lab, args ...string) *watch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := l.Command(ctx, l.Client, lab.BuildNatcheck(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &watch{t: t, cmd: cmd, lines: make(chan string, 100), stderr: &bytes.Buffer{}}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		// Partial lines count too: the test fails on one.
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				w.lines <- line
			}
			if err != nil {
				close(w.lines)
				return
			}
		}
	}()
	return w
}

// next is the next stdout line, without its newline.
func (w *watch) next() string {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			w.t.Fatalf("natcheck ended early; stderr: %s", w.stderr.String())
		}
		if !strings.HasSuffix(line, "\n") {
			w.t.Fatalf("partial line %q", line)
		}
		w.all = append(w.all, line)
		return strings.TrimSuffix(line, "\n")
	case <-time.After(20 * time.Second):
		w.t.Fatalf("no line from natcheck within 20 s; stderr: %s", w.stderr.String())
	}
	return ""
}

// interrupt sends SIGINT (Ctrl-C) and collects the rest of stdout, the exit
// code and how long natcheck took to end.
func (w *watch) interrupt() (code int, took time.Duration) {
	w.t.Helper()
	start := time.Now()
	if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
		w.t.Fatal(err)
	}
	for line := range w.lines {
		w.all = append(w.all, line)
	}
	err := w.cmd.Wait()
	took = time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), took
	} else if err != nil {
		w.t.Fatal(err)
	}
	return 0, took
}

// everyLine is the part of a --every --json line these tests read.
type everyLine struct {
	Time     string `json:"time"`
	Sequence int    `json:"sequence"`
	Changed  []struct {
		Name, From, To string
	} `json:"changed"`
	SchemaVersion int    `json:"schema_version"`
	PublicIP      string `json:"public_ip"`
	Type          string `json:"type"`
	Error         string `json:"error"`
	ExitCode      int    `json:"exit_code"`
}

func (w *watch) nextJSON() everyLine {
	w.t.Helper()
	line := w.next()
	var e everyLine
	dec := json.NewDecoder(strings.NewReader(line))
	if err := dec.Decode(&e); err != nil || dec.More() {
		w.t.Fatalf("not one JSON object per line (%v): %s", err, line)
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || e.SchemaVersion != 1 || e.Sequence < 1 {
		w.t.Fatalf("time %q (%v), schema_version %d, sequence %d: %s", e.Time, err, e.SchemaVersion, e.Sequence, line)
	}
	return e
}

func changedNames(e everyLine) string {
	var names []string
	for _, c := range e.Changed {
		names = append(names, fmt.Sprintf("%s %s->%s", c.Name, c.From, c.To))
	}
	return strings.Join(names, ", ")
}

// TestEveryWhoAmI runs `whoami --every 200ms --json` behind a NAT while
// the server goes silent, comes back seeing another public address, and
// goes silent again; then Ctrl-C in the middle of a run. The server is
// scripted, so each change happens between two known lines: the first
// line after it must carry it, and no other line may be marked.
func TestEveryWhoAmI(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	var dead, moved atomic.Bool
	// dropped: a request arrived while the server was silent.
	dropped := make(chan struct{}, 1)
	moveTo := netip.MustParseAddr("198.51.100.77")
	srv := stuntest.Serve(t, listenInternet(t, l, l.ServerIPs[0], 3478), stuntest.Behaviour{
		Drop: func(int) bool {
			if !dead.Load() {
				return false
			}
			select {
			case dropped <- struct{}{}:
			default:
			}
			return true
		},
		Mapped: func(from netip.AddrPort) netip.AddrPort {
			if moved.Load() {
				return netip.AddrPortFrom(moveTo, from.Port())
			}
			return from
		},
	})
	w := startWatch(t, l, "whoami", "--every", "200ms", "--json", "--timeout", "2s", "-s", srv.Addr.String())
	seq := 0
	read := func() everyLine {
		e := w.nextJSON()
		if e.Sequence <= seq {
			t.Fatalf("sequence %d after %d", e.Sequence, seq)
		}
		seq = e.Sequence
		return e
	}
	for i := range 3 {
		e := read()
		if e.PublicIP != l.PublicIP.String() || e.Error != "" || (i == 0) != (e.Changed == nil) || len(e.Changed) != 0 {
			t.Fatalf("run %d: public %q error %q changed %v; want %s, unchanged", i+1, e.PublicIP, e.Error, e.Changed, l.PublicIP)
		}
	}
	// The server goes silent: runs in flight may still have their answer;
	// the first failed run is marked, and only it.
	dead.Store(true)
	for e := read(); e.Error == ""; e = read() {
		if len(e.Changed) != 0 {
			t.Fatalf("a run before the outage is marked: %s", changedNames(e))
		}
		if seq > 100 {
			t.Fatal("no failed run")
		}
	} // the loop ends on the failed line
	failed := everyLineOf(t, w.all[len(w.all)-1])
	if failed.ExitCode != 3 || changedNames(failed) != "status ok->no-answer" {
		t.Errorf("failed run: exit_code %d, changed %q; want 3 and the status", failed.ExitCode, changedNames(failed))
	}
	// Back, with another public address: both changes on the first answer.
	moved.Store(true)
	dead.Store(false)
	e := read()
	for e.Error != "" {
		if len(e.Changed) != 0 {
			t.Fatalf("a second failed run is marked: %s", changedNames(e))
		}
		e = read()
	}
	if want := "status no-answer->ok, public_ip " + l.PublicIP.String() + "->" + moveTo.String(); e.PublicIP != moveTo.String() || changedNames(e) != want {
		t.Errorf("first answer after the outage: public %s, changed %q; want %s, %q", e.PublicIP, changedNames(e), moveTo, want)
	}
	if e = read(); len(e.Changed) != 0 || e.PublicIP != moveTo.String() {
		t.Errorf("the run after: public %s, changed %q; want no change", e.PublicIP, changedNames(e))
	}
	// Ctrl-C while a run waits for a silent server: the run is cancelled
	// (natcheck ends long before its 2 s timeout) and not printed.
	printed := len(w.all)
	select { // forget the outage above: the server answers now
	case <-dropped:
	default:
	}
	dead.Store(true)
	select {
	case <-dropped: // the next run's first request, unanswered
	case <-time.After(10 * time.Second):
		t.Fatal("no run asked the silent server within 10 s")
	}
	code, took := w.interrupt()
	t.Logf("exit %d %v after SIGINT; %d lines; stderr %q", code, took.Round(time.Millisecond), len(w.all), w.stderr.String())
	if code != 130 || took > 1500*time.Millisecond {
		t.Errorf("exit %d %v after SIGINT; want 130 before the run's 2 s timeout", code, took)
	}
	if len(w.all) != printed {
		t.Errorf("the interrupted run printed %q", w.all[printed:])
	}
	for _, line := range w.all {
		everyLineOf(t, line) // whole lines only
	}
	if want := fmt.Sprintf("natcheck: interrupted after %d runs, 2 with a change\n", len(w.all)); w.stderr.String() != want {
		t.Errorf("stderr %q, want %q", w.stderr.String(), want)
	}
}

// everyLineOf parses a whole stdout line of --every --json.
func everyLineOf(t *testing.T, line string) everyLine {
	t.Helper()
	var e everyLine
	if !strings.HasSuffix(line, "\n") || json.Unmarshal([]byte(line), &e) != nil {
		t.Fatalf("not a whole JSON line: %q", line)
	}
	return e
}

// listenInternet opens a UDP socket in the lab's internet namespace.
func listenInternet(t *testing.T, l *lab.Lab, ip netip.Addr, port int) *net.UDPConn {
	t.Helper()
	c, err := l.ListenUDP(l.Internet, netip.AddrPortFrom(ip, uint16(port)).String())
	if err != nil {
		t.Fatalf("listen in %s: %v", l.Internet, err)
	}
	return c
}

// In text mode the line of the first run after a change says what changed,
// in words.
func TestEveryWhoAmIText(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	var moved atomic.Bool
	srv := stuntest.Serve(t, listenInternet(t, l, l.ServerIPs[0], 3478), stuntest.Behaviour{
		Mapped: func(from netip.AddrPort) netip.AddrPort {
			if moved.Load() {
				return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.77"), from.Port())
			}
			return from
		},
	})
	w := startWatch(t, l, "whoami", "--every", "200ms", "-s", srv.Addr.String())
	first := w.next()
	if f := strings.Fields(first); len(f) < 3 || f[1] != l.PublicIP.String() || f[2] != "behind" || strings.Contains(first, "changed:") {
		t.Fatalf("first line %q: want the time, %s, behind NAT, no change", first, l.PublicIP)
	}
	moved.Store(true)
	line := w.next()
	for !strings.Contains(line, "198.51.100.77") {
		line = w.next()
	}
	if want := "changed: public IP " + l.PublicIP.String() + " -> 198.51.100.77"; !strings.HasSuffix(line, want) {
		t.Errorf("line %q does not end with %q", line, want)
	}
	if code, _ := w.interrupt(); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
}

// type and report --every --json against natcheck serve: each run one
// JSON line with the verdict; Ctrl-C ends them with 130.
func TestEveryTypeAndReport(t *testing.T) {
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	natcheckServe(t, l)
	server := netip.AddrPortFrom(l.ServerIPs[0], 3478).String()
	for _, args := range [][]string{
		{"type", "--every", "2s", "--json", "-s", server},
		{"report", "--every", "2s", "--json", "--no-portmap", "-s", server},
	} {
		t.Run(args[0], func(t *testing.T) {
			w := startWatch(t, l, args...)
			for i := range 2 {
				e := w.nextJSON()
				if e.Type != "port-restricted-cone" || e.PublicIP != l.PublicIP.String() || (i == 0) != (e.Changed == nil) || len(e.Changed) != 0 {
					t.Errorf("run %d: type %q public %q changed %v", i+1, e.Type, e.PublicIP, changedNames(e))
				}
			}
			if code, _ := w.interrupt(); code != 130 || !strings.HasPrefix(w.stderr.String(), "natcheck: interrupted after 2 runs") {
				t.Errorf("exit %d, stderr %q; want 130 after 2 runs", code, w.stderr.String())
			}
		})
	}
}

// requirePromtool skips without promtool, or fails with NATCHECK_LAB=1
// (CI installs Debian's prometheus package, which ships it).
func requirePromtool(t *testing.T) string {
	t.Helper()
	return testutil.RequireTool(t, "promtool", "prometheus")
}

// --format prometheus in the lab: every command's output passes `promtool
// check metrics` and carries the lab's truth; behind a NAT that blocks
// UDP, whoami still writes its metrics (natcheck_success 0, exit 3) and
// type names the blocking.
func TestPrometheusFormat(t *testing.T) {
	promtool := requirePromtool(t)
	check := func(t *testing.T, out string) {
		t.Helper()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(msg)) != 0 {
			t.Errorf("promtool check metrics: %v %s\n%s", err, msg, out)
		}
	}
	labs := map[lab.Kind]*lab.Lab{}
	for _, kind := range []lab.Kind{lab.PortRestrictedCone, lab.UDPBlocked} {
		labs[kind] = lab.New(t, lab.Options{Kind: kind})
		natcheckServe(t, labs[kind])
	}
	for _, tc := range []struct {
		kind lab.Kind
		args []string
		code int
		want []string
	}{
		{lab.PortRestrictedCone, []string{"whoami"}, 0, []string{
			`natcheck_success{command="whoami",family="ipv4"} 1`,
			`natcheck_public_ip_info{command="whoami",family="ipv4",address="203.0.113.2"} 1`,
			`natcheck_behind_nat{command="whoami",family="ipv4"} 1`}},
		{lab.PortRestrictedCone, []string{"type"}, 0, []string{
			`natcheck_nat_type{command="type",family="ipv4",type="port-restricted-cone"} 1`,
			`natcheck_nat_filtering{command="type",family="ipv4",filtering="address-and-port-dependent"} 1`,
			`natcheck_stun_rfc5780_support{command="type",family="ipv4",support="verified"} 1`}},
		{lab.PortRestrictedCone, []string{"report", "--no-portmap"}, 0, []string{
			`natcheck_nat_type{command="report",family="ipv4",type="port-restricted-cone"} 1`,
			`natcheck_stun_server_up{command="report",server="203.0.113.10"} 1`,
			`natcheck_check_status{command="report",check="port-mapping",status="skipped"} 1`}},
		{lab.UDPBlocked, []string{"whoami", "--timeout", "1s"}, 3, []string{
			`natcheck_success{command="whoami",family="ipv4"} 0`}},
		{lab.UDPBlocked, []string{"type"}, 0, []string{
			`natcheck_nat_type{command="type",family="ipv4",type="udp-blocked"} 1`}},
	} {
		t.Run(string(tc.kind)+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			l := labs[tc.kind]
			r := natcheck(t, l, append(tc.args, "--format", "prometheus", "-s", l.ServerIPs[0].String())...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", r.code, tc.code, r.stderr)
			}
			check(t, r.stdout)
			for _, want := range tc.want {
				if !strings.Contains(r.stdout, want+"\n") {
					t.Errorf("no %s in:\n%s", want, r.stdout)
				}
			}
		})
	}
}

// The timer example's command (contrib/prometheus/natcheck-textfile.service)
// run as systemd would run it, in the lab: it leaves one file per check,
// each passing promtool, and no temporary file.
func TestTextfileServiceCommand(t *testing.T) {
	promtool := requirePromtool(t)
	unit, err := os.ReadFile("../contrib/prometheus/natcheck-textfile.service")
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, line := range strings.Split(string(unit), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart=/bin/sh -c '"); ok {
			script = strings.ReplaceAll(strings.TrimSuffix(rest, "'"), "$$", "$") // systemd's escape
		}
	}
	if script == "" {
		t.Fatal("no ExecStart=/bin/sh -c '...' in the unit")
	}
	l := lab.New(t, lab.Options{Kind: lab.PortRestrictedCone})
	natcheckServe(t, l)
	bin, dir := t.TempDir(), t.TempDir()
	if err := os.Symlink(lab.BuildNatcheck(t), bin+"/natcheck"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := l.Command(ctx, l.Client, "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+dir, "PATH="+bin+":"+os.Getenv("PATH"), "NATCHECK_SERVERS="+l.ServerIPs[0].String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "natcheck-type.prom natcheck-whoami.prom" {
		t.Fatalf("files %v, want natcheck-type.prom and natcheck-whoami.prom only", names)
	}
	for _, name := range names {
		f, ferr := os.Open(dir + "/" + name)
		if ferr != nil {
			t.Fatal(ferr)
		}
		check := exec.Command(promtool, "check", "metrics")
		check.Stdin = f
		msg, err := check.CombinedOutput()
		f.Close()
		if err != nil || len(bytes.TrimSpace(msg)) != 0 {
			t.Errorf("%s: promtool check metrics: %v %s", name, err, msg)
		}
	}
	if b, _ := os.ReadFile(dir + "/natcheck-whoami.prom"); !bytes.Contains(b, []byte("natcheck_public_ip_info{command=\"whoami\",family=\"ipv4\",address=\"203.0.113.2\"} 1\n")) {
		t.Errorf("natcheck-whoami.prom lacks the public address:\n%s", b)
	}
}

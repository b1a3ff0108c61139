package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
)

// execute runs natcheck with args and a fixed environment.
func execute(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Execute(context.Background(), args, testDeps(&out, &errOut, env))
	return out.String(), errOut.String(), code
}

func TestWhoAmIPlainPrintsOnlyTheIP(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, errOut, code := execute(t, nil, "whoami", "-s", s.Addr.String())
	if code != ExitOK || out != "127.0.0.1\n" || errOut != "" {
		t.Fatalf("code=%d stdout=%q stderr=%q, want 0, %q, empty", code, out, errOut, "127.0.0.1\n")
	}
}

func TestWhoAmIJSON(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	dead := stuntest.Dead(t, "127.0.0.2")
	out, _, code := execute(t, nil, "whoami", "--json", "-s", a.Addr.String(), "-s", dead.String())
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var got report.WhoAmIJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if got.SchemaVersion != report.SchemaVersion || got.PublicIP != "127.0.0.1" || got.NAT ||
		got.LocalIP != "127.0.0.1" || got.PublicPort != got.LocalPort || got.PublicPort == 0 {
		t.Errorf("unexpected answer: %+v", got)
	}
	if len(got.Servers) != 2 || got.Servers[0].Status != "answered" || got.Servers[0].RTTMs == nil {
		t.Errorf("servers: %+v", got.Servers)
	}
	if st := got.Servers[1].Status; st != "skipped" && st != "no-answer" {
		t.Errorf("dead server status %q", st)
	}
}

func TestWhoAmIVerbose(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, _, code := execute(t, nil, "whoami", "-v", "-s", s.Addr.String())
	lines := strings.Split(out, "\n")
	if code != ExitOK || lines[0] != "127.0.0.1" {
		t.Fatalf("code %d, first line %q", code, lines[0])
	}
	for _, want := range []string{"public address", "local address", "behind NAT", "no:", s.Addr.String(), "rtt"} {
		if !strings.Contains(out, want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out)
		}
	}
}

func TestWhoAmIServersFromEnvironment(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.2", stuntest.Behaviour{})
	out, _, code := execute(t, map[string]string{ServersEnv: " ," + s.Addr.String()}, "whoami")
	if code != ExitOK || out != "127.0.0.1\n" {
		t.Fatalf("code=%d out=%q", code, out)
	}
	if s.Requests() == 0 {
		t.Error("the server from the environment was not asked")
	}
}

func TestWhoAmINoAnswerExitCode(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	start := time.Now()
	out, errOut, code := execute(t, nil, "whoami", "--timeout", "400ms", "-s", dead.String())
	if code != ExitNoAnswer || out != "" {
		t.Fatalf("code=%d stdout=%q, want %d and nothing on stdout", code, out, ExitNoAnswer)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no STUN server answered") {
		t.Errorf("stderr must be one clear line, got %q", errOut)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v with --timeout 400ms", time.Since(start))
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{"whoami", "--server", "not a server::"},
		{"whoami", "-s", "stuns:secure.example"},
		{"whoami", "-4", "-6", "-s", "127.0.0.1"},
		{"whoami", "--timeout", "-1s", "-s", "127.0.0.1"},
		{"whoami", "--timeout", "soon", "-s", "127.0.0.1"},
		{"whoami", "--bogus"},
		{"whoami", "extra-arg"},
		{"no-such-command"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, errOut, code := execute(t, nil, args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", code, ExitUsage, errOut)
			}
			if out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "natcheck: ") {
				t.Errorf("want one line on stderr and nothing on stdout; stdout=%q stderr=%q", out, errOut)
			}
		})
	}
	_, errOut, code := execute(t, map[string]string{ServersEnv: "bad::server"}, "whoami")
	if code != ExitUsage || !strings.Contains(errOut, ServersEnv) {
		t.Errorf("bad %s: exit %d, stderr %q", ServersEnv, code, errOut)
	}
}

// The command hands the flags to the probe unchanged: a fake run records them.
func TestWhoAmIFlagsReachProbe(t *testing.T) {
	var got probe.WhoAmIOptions
	var left time.Duration
	fake := func(ctx context.Context, opts probe.WhoAmIOptions) (*probe.WhoAmI, error) {
		got = opts
		dl, _ := ctx.Deadline()
		left = time.Until(dl)
		return nil, stunclient.ErrNoAnswer
	}
	errOut := &bytes.Buffer{}
	c := newWhoAmICmdWith(testDeps(&bytes.Buffer{}, errOut, nil), fake)
	c.SetArgs([]string{"-6", "-s", "[2001:db8::1]:3479", "-s", "a.example,b.example:1", "--timeout", "5s"})
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitNoAnswer {
		t.Fatalf("err = %v, want exit %d", err, ExitNoAnswer)
	}
	if got.Family != stunclient.IPv6 {
		t.Errorf("family %v, want IPv6", got.Family)
	}
	var names []string
	for _, s := range got.Servers {
		names = append(names, s.String())
	}
	if strings.Join(names, " ") != "[2001:db8::1]:3479 a.example:3478 b.example:1" {
		t.Errorf("servers %v", names)
	}
	if left < 4*time.Second || left > 5*time.Second {
		t.Errorf("deadline %v away, want about 5s", left)
	}
}

func TestServerListsAreDedupedAndFitTheirFamily(t *testing.T) {
	f := probeFlags{servers: []string{"203.0.113.10", "stun:203.0.113.10:3478", "203.0.113.10,203.0.113.11"}, timeout: time.Second}
	r, err := f.resolve(testDeps(nil, nil, nil))
	if err != nil || len(r.servers) != 2 {
		t.Fatalf("servers %v, err %v; want the two distinct ones", r.servers, err)
	}
	f = probeFlags{servers: []string{"2001:db8::10"}, timeout: time.Second}
	if r, err = f.resolve(testDeps(nil, nil, nil)); err != nil || r.family != stunclient.IPv6 {
		t.Errorf("an IPv6 literal without -6: family %v, err %v; want IPv6", r.family, err)
	}
	for _, bad := range []probeFlags{
		{servers: []string{"2001:db8::10"}, ipv4: true, timeout: time.Second},
		{servers: []string{"203.0.113.10"}, ipv6: true, timeout: time.Second},
	} {
		if _, err := bad.resolve(testDeps(nil, nil, nil)); err == nil {
			t.Errorf("%+v: want a usage error", bad)
		}
	}
}

// closedPort is a loopback UDP port nothing listens on: bound, then closed.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// A closed port answers with ICMP port unreachable: on Linux whoami and
// type say "refused" at once instead of waiting out --timeout; elsewhere
// the port reads as silence, as before.
func TestClosedPortIsRefusedAtOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux tells an unconnected socket which destination refused")
	}
	for _, command := range []string{"whoami", "type"} {
		start := time.Now()
		out, errOut, code := execute(t, nil, command, "-s", closedPort(t), "--timeout", "3s")
		took := time.Since(start)
		if code != ExitNoAnswer || out != "" || !strings.Contains(errOut, "refused (ICMP port unreachable)") ||
			strings.Contains(errOut, "offline") || took > 2*time.Second {
			t.Errorf("%s: exit %d after %v, stdout %q, stderr %q", command, code, took, out, errOut)
		}
	}
	out, _, code := execute(t, nil, "whoami", "--json", "-s", closedPort(t))
	if code != ExitNoAnswer || out != "" {
		t.Errorf("whoami --json: exit %d, stdout %q", code, out)
	}
}

// A --timeout too short for any answer is named as the cause, not the
// network.
func TestTinyTimeoutSaysItRanOut(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	for _, command := range []string{"whoami", "type", "tcp", "ipv6"} {
		_, errOut, code := execute(t, nil, command, "-s", dead.String(), "--timeout", "1ns")
		if code != ExitNoAnswer || !strings.Contains(errOut, "--timeout 1ns ran out before any server could answer") ||
			strings.Contains(errOut, "offline") {
			t.Errorf("%s --timeout 1ns: exit %d, stderr %q", command, code, errOut)
		}
	}
}

// A pasted file given as -s or in $NATCHECK_SERVERS is not echoed whole.
func TestHugeServerValueIsClipped(t *testing.T) {
	huge := strings.Repeat("a", 100_000)
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"whoami", "-s", huge}},
		{map[string]string{ServersEnv: huge}, []string{"whoami"}},
	} {
		out, errOut, code := execute(t, tc.env, tc.args...)
		if code != ExitUsage || out != "" || len(errOut) > 300 || !strings.Contains(errOut, "… (100000 bytes)") {
			t.Errorf("exit %d, stdout %q, stderr of %d bytes: %.300s", code, out, len(errOut), errOut)
		}
	}
}

package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/testutil"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/spf13/cobra"
)

// runEvery runs the command make builds with args under ctx and an
// instant clock.
func runEvery(t *testing.T, ctx context.Context, make func(*Deps) *cobra.Command, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	d := testDeps(&out, &errOut, nil)
	d.Clock = testutil.NewInstantClock(time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC))
	c := make(d)
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(errorLine(err) + "\n")
	}
	return out.String(), errOut.String(), exitCode(ctx, err)
}

// sequence returns a context and a fake probe that gives results[i] on
// call i and, on the call after the last, cancels the context (as Ctrl-C
// during that run would) and waits for the cancellation to reach it.
func sequence[T any](t *testing.T, results []func() (T, error)) (context.Context, func(ctx context.Context) (T, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	calls := 0
	return ctx, func(runCtx context.Context) (T, error) {
		calls++
		if calls > len(results) {
			cancel()
			<-runCtx.Done()
			var zero T
			return zero, runCtx.Err()
		}
		return results[calls-1]()
	}
}

func whoamiAt(ip string) func() (*probe.WhoAmI, error) {
	return func() (*probe.WhoAmI, error) {
		pub := netip.MustParseAddrPort(ip + ":40000")
		return &probe.WhoAmI{Family: stunclient.IPv4, Public: pub, Local: netip.MustParseAddrPort("192.168.1.2:40000"), NAT: true,
			Agreed: 1, Elapsed: 50 * time.Millisecond,
			Servers: []probe.ServerResult{{Server: stunclient.Server{Input: "203.0.113.10"}, Status: probe.StatusAnswered, Mapped: pub}}}, nil
	}
}

func noAnswer() (*probe.WhoAmI, error) {
	return nil, stunclient.ErrNoAnswer
}

// whoami --every: one line per run; the failed run is a line of its own,
// and the changes it and the new address brought are marked; the
// interrupt in the fifth run prints nothing of it and ends with 130.
func TestWhoAmIEvery(t *testing.T) {
	ctx, probeRun := sequence(t, []func() (*probe.WhoAmI, error){
		whoamiAt("203.0.113.2"), whoamiAt("203.0.113.2"), noAnswer, whoamiAt("198.51.100.7")})
	make := func(d *Deps) *cobra.Command {
		return newWhoAmICmdWith(d, func(ctx context.Context, _ probe.WhoAmIOptions) (*probe.WhoAmI, error) { return probeRun(ctx) })
	}
	out, errOut, code := runEvery(t, ctx, make, "--every", "1m", "-s", "203.0.113.10")
	want := []string{
		"2026-03-14T08:00:00.000Z  203.0.113.2  behind NAT  1 server  50 ms",
		"2026-03-14T08:01:00.000Z  203.0.113.2  behind NAT  1 server  50 ms",
		"2026-03-14T08:02:00.000Z  error: no STUN server answered; the host may be offline, or this traffic blocked  changed: status ok -> no-answer",
		"2026-03-14T08:03:00.000Z  198.51.100.7  behind NAT  1 server  50 ms  changed: status no-answer -> ok; public IP 203.0.113.2 -> 198.51.100.7",
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if code != ExitInterrupted || errOut != "natcheck: interrupted after 4 runs, 2 with a change\n" {
		t.Errorf("exit %d, stderr %q; want %d and the count of runs", code, errOut, ExitInterrupted)
	}
}

// With --json each run is one JSON object on one line; a failed run
// carries its error and the exit code a single run would have had.
func TestWhoAmIEveryJSON(t *testing.T) {
	ctx, probeRun := sequence(t, []func() (*probe.WhoAmI, error){whoamiAt("203.0.113.2"), noAnswer})
	make := func(d *Deps) *cobra.Command {
		return newWhoAmICmdWith(d, func(ctx context.Context, _ probe.WhoAmIOptions) (*probe.WhoAmI, error) { return probeRun(ctx) })
	}
	out, _, code := runEvery(t, ctx, make, "--every", "100ms", "--json", "-s", "203.0.113.10")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitInterrupted || len(lines) != 2 {
		t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), out)
	}
	var first, second map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON lines:\n%s", out)
	}
	if first["time"] != "2026-03-14T08:00:00.000Z" || first["sequence"] != 1.0 || first["changed"] != nil || first["public_ip"] != "203.0.113.2" {
		t.Errorf("first line: %v", first)
	}
	changed, _ := second["changed"].([]any)
	if second["time"] != "2026-03-14T08:00:00.100Z" || second["exit_code"] != float64(ExitNoAnswer) || len(changed) != 1 ||
		!strings.HasPrefix(second["error"].(string), "no STUN server answered") {
		t.Errorf("second line: %v", second)
	}
}

// type --every with --fail-on ends at the first run whose verdict matches,
// after printing it, with exit 4.
func TestTypeEveryFailOn(t *testing.T) {
	result := func(typ nat.NATType) func() (*probe.TypeResult, error) {
		return func() (*probe.TypeResult, error) { return fakeTypeResult(typ), nil }
	}
	ctx, probeRun := sequence(t, []func() (*probe.TypeResult, error){result(nat.TypePortRestrictedCone), result(nat.TypeSymmetric), result(nat.TypeSymmetric)})
	make := func(d *Deps) *cobra.Command {
		return newTypeCmdWith(d, func(ctx context.Context, _ probe.TypeOptions) (*probe.TypeResult, error) { return probeRun(ctx) })
	}
	out, errOut, code := runEvery(t, ctx, make, "--every", "5m", "--fail-on", "symmetric", "-s", "203.0.113.10")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitVerdict || len(lines) != 2 || !strings.Contains(lines[1], "changed: type port-restricted-cone -> symmetric") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant 4 after the second line, marked", code, errOut, out)
	}
}

// report --every --json prints each report as one line.
func TestReportEvery(t *testing.T) {
	done := func() (*diagnose.Result, error) {
		return &diagnose.Result{Checks: []diagnose.Check{{Name: diagnose.CheckType, Status: diagnose.StatusDone}}}, nil
	}
	failed := func() (*diagnose.Result, error) {
		return &diagnose.Result{Checks: []diagnose.Check{{Name: diagnose.CheckType, Status: diagnose.StatusFailed, Note: "no STUN server answered"}}}, nil
	}
	ctx, probeRun := sequence(t, []func() (*diagnose.Result, error){done, failed})
	make := func(d *Deps) *cobra.Command {
		return newReportCmdWith(d, func(ctx context.Context, _ diagnose.Options) (*diagnose.Result, error) { return probeRun(ctx) })
	}
	out, _, code := runEvery(t, ctx, make, "--every", "1h", "--json", "-s", "203.0.113.10")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitInterrupted || len(lines) != 2 {
		t.Fatalf("exit %d, stdout:\n%s", code, out)
	}
	var second struct {
		Time    string `json:"time"`
		Changed []struct{ Name, From, To string }
		Checks  []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if second.Time != "2026-03-14T09:00:00.000Z" || len(second.Changed) != 1 || second.Changed[0].Name != "check:nat-type" ||
		second.Changed[0].To != "failed" || len(second.Checks) != 1 {
		t.Errorf("second line: %+v", second)
	}
}

func TestEveryUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"whoami", "--every", "50ms"},
		{"whoami", "--every", "0s"},
		{"whoami", "--every", "-1m"},
		{"whoami", "--every", "soon"},
		{"whoami", "--every", "1m", "--format", "prometheus"},
		{"whoami", "--json", "--format", "prometheus"},
		{"whoami", "--format", "markdown"},
		{"type", "--every", "1s"},
		{"type", "--every", "3s", "--runs", "2"},
		{"type", "--every", "1m", "--format", "prometheus"},
		{"report", "--every", "1s"},
		{"report", "--every", "1m", "--format", "markdown"},
		{"report", "--every", "1m", "--format", "prometheus"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, errOut, code := execute(t, nil, append(args, "-s", "203.0.113.10")...)
			if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, one line", code, out, errOut, ExitUsage)
			}
		})
	}
}

// --format prometheus prints its metrics also when no server answered
// (natcheck_success 0), and still exits 3.
func TestPrometheusWhenNoAnswer(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	out, errOut, code := execute(t, nil, "whoami", "--format", "prometheus", "--timeout", "300ms", "-s", dead.String())
	if code != ExitNoAnswer || !strings.Contains(out, "\nnatcheck_success{command=\"whoami\",family=\"ipv4\"} 0\n") ||
		strings.Contains(out, "natcheck_public_ip_info") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	live := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, _, code = execute(t, nil, "whoami", "--format", "prometheus", "-s", live.Addr.String())
	if code != ExitOK || !strings.Contains(out, "natcheck_public_ip_info{command=\"whoami\",family=\"ipv4\",address=\"127.0.0.1\"} 1\n") {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}
}

// An interrupted --format prometheus run prints nothing: a 0 for
// natcheck_success would be a false alarm.
func TestPrometheusInterruptedPrintsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	c := newWhoAmICmdWith(testDeps(&out, &errOut, nil), func(ctx context.Context, _ probe.WhoAmIOptions) (*probe.WhoAmI, error) {
		cancel()
		return nil, errors.Join(stunclient.ErrNoAnswer, ctx.Err())
	})
	c.SetArgs([]string{"--format", "prometheus", "-s", "203.0.113.10"})
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(ctx)
	if code := exitCode(ctx, err); code != ExitInterrupted || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, out.String(), ExitInterrupted)
	}
}

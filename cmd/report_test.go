package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/probe/lifetime"
)

// fakeDiagnosis records the options and returns a result with one failed check.
func fakeDiagnosis(got *diagnose.Options) func(context.Context, diagnose.Options) (*diagnose.Result, error) {
	return func(ctx context.Context, o diagnose.Options) (*diagnose.Result, error) {
		*got = o
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &diagnose.Result{Checks: []diagnose.Check{
			{Name: diagnose.CheckType, Status: diagnose.StatusFailed, Note: "no STUN server answered"},
		}}, nil
	}
}

func runReportCmd(t *testing.T, ctx context.Context, args ...string) (diagnose.Options, string, error) {
	t.Helper()
	var got diagnose.Options
	out := &bytes.Buffer{}
	c := newReportCmdWith(testDeps(out, &bytes.Buffer{}, nil), fakeDiagnosis(&got))
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(ctx)
	return got, out.String(), err
}

func TestReportFlagsReachDiagnosis(t *testing.T) {
	got, _, err := runReportCmd(t, context.Background(), "-s", "203.0.113.10", "--lifetime", "--lifetime-max", "40s", "--no-portmap", "--timeout", "2s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Servers) != 1 || got.Servers[0].Host != "203.0.113.10" || !got.Lifetime ||
		got.LifetimeMax != 40*time.Second || !got.NoPortmap || got.Timeout != 2*time.Second || got.Start == nil {
		t.Errorf("options %+v", got)
	}
	got, _, _ = runReportCmd(t, context.Background(), "-s", "203.0.113.10")
	if got.Timeout != reportTimeout || got.Lifetime || got.LifetimeMax != lifetime.DefaultMax {
		t.Errorf("defaults: %+v", got)
	}
}

func TestReportFormats(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(string) bool
	}{
		{[]string{"--format", "json"}, func(s string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(s), &m) == nil && m["type"] == "unknown"
		}},
		{[]string{"--json"}, func(s string) bool { return strings.HasPrefix(s, "{") }},
		{[]string{"--format", "markdown"}, func(s string) bool { return strings.HasPrefix(s, "# natcheck report\n") }},
		{nil, func(s string) bool { return strings.HasPrefix(s, "unknown: failed: no STUN server answered\n") }},
	} {
		_, out, err := runReportCmd(t, context.Background(), append([]string{"-s", "203.0.113.10"}, tc.args...)...)
		if err != nil || !tc.check(out) {
			t.Errorf("%v: err %v, output:\n%s", tc.args, err, out)
		}
	}
}

func TestReportUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--format", "yaml"}, {"-6"}, {"--lifetime", "--lifetime-max", "0s"}, {"--lifetime", "--lifetime-max", "1ns"},
		{"--timeout", "0s"}, {"--json", "--format", "markdown"},
	} {
		_, _, err := runReportCmd(t, context.Background(), append([]string{"-s", "203.0.113.10"}, args...)...)
		if !isExit(err, ExitUsage) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
}

func TestReportInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, out, err := runReportCmd(t, ctx, "-s", "203.0.113.10")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitInterrupted || out != "" {
		t.Errorf("err %v, stdout %q; want exit %d and nothing printed", err, out, ExitInterrupted)
	}
}

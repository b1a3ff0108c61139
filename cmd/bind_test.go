package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// bindDeps are test deps whose host has 192.168.1.2 and 2001:db8::2.
func bindDeps(out, errOut *bytes.Buffer) *Deps {
	d := testDeps(out, errOut, nil)
	d.HostAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("2001:db8::2")}, nil
	}
	return d
}

func executeCmd(c *cobra.Command, args ...string) error {
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	return c.ExecuteContext(context.Background())
}

// --bind and --runs are checked before anything runs: a bad value is a
// usage error (exit 2) in every command that takes them.
func TestBindAndRunsUsageErrors(t *testing.T) {
	ran := false
	fakeType := func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) {
		ran = true
		return fakeTypeResult(nat.TypeFullCone), nil
	}
	fakeWho := func(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error) {
		ran = true
		return &probe.WhoAmI{}, nil
	}
	var got diagnose.Options
	cmds := map[string]func(d *Deps) *cobra.Command{
		"type":   func(d *Deps) *cobra.Command { return newTypeCmdWith(d, fakeType) },
		"whoami": func(d *Deps) *cobra.Command { return newWhoAmICmdWith(d, fakeWho) },
		"report": func(d *Deps) *cobra.Command { return newReportCmdWith(d, fakeDiagnosis(&got)) },
		"tcp":    newTCPCmd,
	}
	cases := []struct {
		cmds []string
		args []string
		want string
	}{
		{[]string{"type", "whoami", "report", "tcp"}, []string{"--bind", "10.9.9.9"}, "not an address of this host"},
		{[]string{"type", "whoami", "report", "tcp"}, []string{"--bind", "0.0.0.0"}, "not one address of this host"},
		{[]string{"type", "whoami", "tcp"}, []string{"--bind", "[::]:4000"}, "not one address of this host"},
		{[]string{"type", "whoami", "report", "tcp"}, []string{"--bind", "224.0.0.1"}, "not one address of this host"},
		{[]string{"type", "whoami", "report", "tcp"}, []string{"--bind", "host.example"}, "is not IP, IP:PORT or [IPv6]:PORT"},
		{[]string{"type", "whoami", "report", "tcp"}, []string{"--bind", "192.168.1.2:70000"}, "is not IP, IP:PORT or [IPv6]:PORT"},
		{[]string{"type", "whoami", "tcp"}, []string{"--bind", "192.168.1.2", "-6", "-s", "stun.example.net"}, "is an IPv4 address, but -6 asks for IPv6"},
		{[]string{"type", "whoami", "tcp"}, []string{"--bind", "2001:db8::2", "-4"}, "is an IPv6 address, but -4 asks for IPv4"},
		{[]string{"type", "whoami", "tcp"}, []string{"--bind", "2001:db8::2"}, "but server 203.0.113.10 is not"},
		{[]string{"type", "whoami", "tcp"}, []string{"--bind", "192.168.1.2", "-s", "[2001:db8::10]:3478"}, "but server [2001:db8::10]:3478 is not"},
		{[]string{"report"}, []string{"--bind", "2001:db8::2", "-s", "stun.example.net"}, "needs an IPv4 address"},
		{[]string{"type", "report"}, []string{"--runs", "0"}, "--runs must be between 1 and 100, got 0"},
		{[]string{"type", "report"}, []string{"--runs", "101"}, "--runs must be between 1 and 100"},
		{[]string{"type", "report"}, []string{"--runs", "-3"}, "--runs must be between 1 and 100"},
	}
	for _, tc := range cases {
		for _, name := range tc.cmds {
			t.Run(name+" "+strings.Join(tc.args, " "), func(t *testing.T) {
				ran = false
				args := tc.args
				if !strings.Contains(strings.Join(args, " "), "-s ") {
					args = append(args, "-s", "203.0.113.10")
				}
				err := executeCmd(cmds[name](bindDeps(&bytes.Buffer{}, &bytes.Buffer{})), args...)
				if code := exitCode(context.Background(), err); code != ExitUsage {
					t.Fatalf("exit %d (%v), want %d", code, err, ExitUsage)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q, want it to contain %q", err, tc.want)
				}
				if ran {
					t.Error("the probe ran despite the usage error")
				}
			})
		}
	}
}

// A valid --bind reaches the probes as an address and port; an IPv6 one
// chooses IPv6 as an IPv6 server literal does.
func TestBindReachesProbes(t *testing.T) {
	var mu sync.Mutex
	var typeOpts []probe.TypeOptions
	fakeType := func(_ context.Context, o probe.TypeOptions) (*probe.TypeResult, error) {
		mu.Lock()
		typeOpts = append(typeOpts, o)
		mu.Unlock()
		return fakeTypeResult(nat.TypeFullCone), nil
	}
	if err := executeCmd(newTypeCmdWith(bindDeps(&bytes.Buffer{}, &bytes.Buffer{}), fakeType), "--bind", "192.168.1.2:40000", "-s", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	if len(typeOpts) != 1 || typeOpts[0].Bind != netip.MustParseAddrPort("192.168.1.2:40000") {
		t.Errorf("type options %+v", typeOpts)
	}
	var who probe.WhoAmIOptions
	fakeWho := func(_ context.Context, o probe.WhoAmIOptions) (*probe.WhoAmI, error) {
		who = o
		return &probe.WhoAmI{Public: netip.MustParseAddrPort("[2001:db8::2]:40000")}, nil
	}
	if err := executeCmd(newWhoAmICmdWith(bindDeps(&bytes.Buffer{}, &bytes.Buffer{}), fakeWho), "--bind", "[2001:db8::2]:5000", "-s", "stun.example.net"); err != nil {
		t.Fatal(err)
	}
	if who.Bind != netip.MustParseAddrPort("[2001:db8::2]:5000") || who.Family.String() != "IPv6" {
		t.Errorf("whoami options %+v", who)
	}
	var got diagnose.Options
	if err := executeCmd(newReportCmdWith(bindDeps(&bytes.Buffer{}, &bytes.Buffer{}), fakeDiagnosis(&got)), "--bind", "192.168.1.2", "--runs", "3", "-s", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	if got.Bind != netip.MustParseAddrPort("192.168.1.2:0") || got.Runs != 3 {
		t.Errorf("report options: bind %v runs %d", got.Bind, got.Runs)
	}
	got = diagnose.Options{}
	if err := executeCmd(newReportCmdWith(bindDeps(&bytes.Buffer{}, &bytes.Buffer{}), fakeDiagnosis(&got)), "-s", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	if got.Bind.IsValid() || got.Runs != 0 {
		t.Errorf("report defaults: bind %v runs %d", got.Bind, got.Runs)
	}
}

// type --runs runs the probe N times and says how many agreed, on the
// first line and in JSON; --fail-on applies to the majority verdict.
func TestTypeRuns(t *testing.T) {
	verdicts := []nat.NATType{nat.TypeSymmetric, nat.TypePortRestrictedCone, nat.TypeSymmetric}
	newCmd := func(out *bytes.Buffer) *cobra.Command {
		var mu sync.Mutex
		i := 0
		return newTypeCmdWith(bindDeps(out, &bytes.Buffer{}), func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			r := fakeTypeResult(verdicts[i%len(verdicts)])
			i++
			return r, nil
		})
	}
	var out bytes.Buffer
	err := executeCmd(newCmd(&out), "--runs", "3", "-s", "203.0.113.10", "--fail-on", "symmetric")
	if code := exitCode(context.Background(), err); code != ExitVerdict {
		t.Fatalf("exit %d (%v), want %d: --fail-on applies to the majority", code, err, ExitVerdict)
	}
	first, rest, _ := strings.Cut(out.String(), "\n")
	if first != "symmetric (mapping address-and-port-dependent, filtering address-and-port-dependent), 2 of 3 runs" {
		t.Errorf("first line %q", first)
	}
	if !strings.Contains(rest, "runs differed in: type") || !strings.Contains(rest, "run 2") || !strings.Contains(rest, "(differs)") {
		t.Errorf("the disagreement is not shown:\n%s", rest)
	}

	out.Reset()
	if err := executeCmd(newCmd(&out), "--runs", "3", "--json", "-s", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	var j report.TypeJSON
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.Type != nat.TypeSymmetric || j.Agreement == nil || j.Agreement.Runs != 3 || j.Agreement.Agreeing != 2 ||
		len(j.Runs) != 3 || j.Runs[1].Type != nat.TypePortRestrictedCone || j.Runs[1].Agrees || !j.Runs[0].Agrees {
		t.Errorf("JSON %+v", j)
	}

	// Without --runs the output has no record of runs.
	out.Reset()
	if err := executeCmd(newCmd(&out), "--json", "-s", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"runs"`) || strings.Contains(out.String(), `"agreement"`) {
		t.Errorf("runs without --runs:\n%s", out.String())
	}
}

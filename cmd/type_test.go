package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
)

// fakeType returns a command whose probe run yields a fixed verdict.
func fakeTypeResult(typ nat.NATType) *probe.TypeResult {
	return &probe.TypeResult{
		Primary: netip.MustParseAddrPort("203.0.113.10:3478"),
		Verdict: nat.Verdict{Type: typ, NAT: tri.Yes, Mapping: nat.AddressAndPortDependent, Filtering: nat.AddressAndPortDependent,
			Public: netip.MustParseAddrPort("203.0.113.2:61000"), Local: netip.MustParseAddrPort("192.168.1.2:40000"),
			RFC5780: nat.RFC5780Advertised, Evidence: []string{"mapping: address-and-port-dependent, ..."}, Outlook: "relay needed"},
	}
}

func runTypeFake(t *testing.T, typ nat.NATType, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut strings.Builder
	c := newTypeCmdWith(testDeps(&out, &errOut, nil), func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) {
		return fakeTypeResult(typ), nil
	})
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	return out.String(), errOut.String(), exitCode(context.Background(), err)
}

func TestTypeFailOn(t *testing.T) {
	cases := []struct {
		name string
		typ  nat.NATType
		args []string
		code int
	}{
		{"matches", nat.TypeSymmetric, []string{"--fail-on", "symmetric,udp-blocked", "-s", "203.0.113.10"}, ExitVerdict},
		{"repeated flag matches", nat.TypeUDPBlocked, []string{"--fail-on", "symmetric", "--fail-on", "udp-blocked", "-s", "203.0.113.10"}, ExitVerdict},
		{"does not match", nat.TypeFullCone, []string{"--fail-on", "symmetric", "-s", "203.0.113.10"}, ExitOK},
		{"unknown type is a usage error", nat.TypeFullCone, []string{"--fail-on", "symetric", "-s", "203.0.113.10"}, ExitUsage},
		{"no fail-on", nat.TypeSymmetric, []string{"-s", "203.0.113.10"}, ExitOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, code := runTypeFake(t, c.typ, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d", code, c.code)
			}
			if c.code != ExitUsage && !strings.HasPrefix(out, string(c.typ)+" (") {
				t.Errorf("first line should be the verdict, got:\n%s", out)
			}
		})
	}
}

func TestTypeTextShape(t *testing.T) {
	out, _, code := runTypeFake(t, nat.TypeSymmetric, "-s", "203.0.113.10")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "symmetric (mapping address-and-port-dependent, filtering address-and-port-dependent)" {
		t.Errorf("verdict line %q", lines[0])
	}
	for _, want := range []string{"public address", "203.0.113.2:61000", "local address", "192.168.1.2:40000", "evidence:", "P2P: relay needed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestTypeAgainstLoopbackServer runs the real probe against a plain
// in-process server: no NAT on loopback, and without RFC 5780 support the
// filtering, hence the type, is honestly unknown.
func TestTypeAgainstLoopbackServer(t *testing.T) {
	s := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, errOut, code := execute(t, nil, "type", "--json", "-s", s.Addr.String())
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got report.TypeJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if got.SchemaVersion != report.SchemaVersion || got.NAT != tri.No || got.PublicIP != "127.0.0.1" ||
		got.Filtering != nat.FilteringUnknown || got.Type != nat.TypeUnknown || got.RFC5780 != nat.RFC5780Absent || got.LocalIP != "127.0.0.1" {
		t.Errorf("unexpected answer: %s", out)
	}
	if len(got.Tests) == 0 || got.Tests[0].Name != nat.TestBinding || !got.Tests[0].Replied {
		t.Errorf("tests: %+v", got.Tests)
	}
}

func TestTypeNoAnswer(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	out, errOut, code := execute(t, nil, "type", "--timeout", "400ms", "-s", dead.String())
	if code != ExitNoAnswer || out != "" || !strings.Contains(errOut, "no STUN server answered") {
		t.Fatalf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
	if strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr should be one line: %q", errOut)
	}
}

// --lifetime runs the measurement beside the tests and adds it to both
// outputs; a failed measurement is reported, not fatal.
func TestTypeLifetime(t *testing.T) {
	measured := &lifetime.Result{Family: stunclient.IPv4, Result: lifetime.Measured,
		Lower: 28 * time.Second, Upper: 31 * time.Second, Method: lifetime.MethodResponsePort}
	for _, tc := range []struct {
		name string
		l    *lifetime.Result
		err  error
		want []string
	}{
		{"measured", measured, nil, []string{"UDP mapping lifetime: about 30s"}},
		{"failed", nil, errors.New("no server honours RESPONSE-PORT"), []string{"UDP mapping lifetime: not measured (no server honours RESPONSE-PORT)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotMax time.Duration
			for _, asJSON := range []bool{false, true} {
				var out strings.Builder
				o := &typeOptions{lifetime: true, lifetimeMax: 40 * time.Second,
					run: func(context.Context, probe.TypeOptions) (*probe.TypeResult, error) {
						return fakeTypeResult(nat.TypeSymmetric), nil
					},
					measure: func(_ context.Context, lo lifetime.Options) (*lifetime.Result, error) {
						gotMax = lo.Max
						return tc.l, tc.err
					}}
				o.flags.servers, o.flags.timeout, o.flags.json = []string{"203.0.113.10"}, time.Second, asJSON
				format := "text"
				if asJSON {
					format = "json"
				}
				err := runType(context.Background(), testDeps(&out, io.Discard, nil), o, format)
				if err != nil {
					t.Fatal(err)
				}
				if gotMax != 40*time.Second {
					t.Errorf("lifetime max %v, want 40s", gotMax)
				}
				if !asJSON {
					for _, w := range tc.want {
						if !strings.Contains(out.String(), w) {
							t.Errorf("text lacks %q:\n%s", w, out.String())
						}
					}
					continue
				}
				var j report.TypeWithLifetimeJSON
				if err := json.Unmarshal([]byte(out.String()), &j); err != nil {
					t.Fatal(err)
				}
				if j.Type != nat.TypeSymmetric || (j.Lifetime != nil) != (tc.l != nil) || (j.LifetimeError != "") != (tc.err != nil) {
					t.Errorf("json: %+v", j)
				}
			}
		})
	}
}

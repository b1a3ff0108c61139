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

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
)

// fakePortmap is a gateway whose UPnP works and whose other protocols are
// missing, behind a carrier NAT.
func fakePortmap(_ context.Context, o portmap.Options) (*portmap.Report, error) {
	return &portmap.Report{
		Gateway: portmap.Gateway{Addr: netip.MustParseAddr("192.168.1.1"), Local: netip.MustParseAddr("192.168.1.2")},
		Results: []portmap.Result{
			{Protocol: portmap.UPnP, Supported: tri.Yes, ExternalIP: netip.MustParseAddr("100.64.0.2"),
				MappingAdded: tri.Yes, MappingDeleted: tri.Yes, InternalPort: 40000, ExternalPort: 40000,
				Lifetime: time.Minute, Timings: portmap.Timings{Discover: time.Millisecond, Total: 3 * time.Millisecond}},
			{Protocol: portmap.NATPMP, Supported: tri.No, Err: errors.New("refused")},
			{Protocol: portmap.PCP, Supported: tri.No, Err: errors.New("refused")},
		},
	}, nil
}

func fakeWhoAmI(context.Context, probe.WhoAmIOptions) (*probe.WhoAmI, error) {
	return &probe.WhoAmI{Public: netip.MustParseAddrPort("203.0.113.2:40000")}, nil
}

func runPortmapCmd(t *testing.T, check func(context.Context, portmap.Options) (*portmap.Report, error), args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c := newPortmapCmdWith(testDeps(&out, &bytes.Buffer{}, nil), check, fakeWhoAmI)
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

func TestPortmapJSON(t *testing.T) {
	out, err := runPortmapCmd(t, fakePortmap, "--json", "-s", "203.0.113.10")
	if err != nil {
		t.Fatal(err)
	}
	var p report.PortmapJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if p.SchemaVersion != report.SchemaVersion || p.UPnP == nil || p.UPnP.Supported != tri.Yes ||
		p.NATPMP.Supported != tri.No || p.PCP.MappingAdded != tri.Unknown {
		t.Errorf("protocols: %s", out)
	}
	if p.DoubleNAT.Detected != tri.Yes || p.DoubleNAT.GatewayExternalIP != "100.64.0.2" || p.DoubleNAT.STUNMappedIP != "203.0.113.2" {
		t.Errorf("double NAT: %+v", p.DoubleNAT)
	}
	// null, not false, for what was not tested.
	if !strings.Contains(out, `"mapping_added": null`) {
		t.Errorf("untested mapping should be null:\n%s", out)
	}
}

func TestPortmapTextVerdictFirst(t *testing.T) {
	out, err := runPortmapCmd(t, fakePortmap, "--no-stun")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(out, "\n")
	if first != "port mapping: UPnP yes, NAT-PMP no, PCP no; double NAT: yes" {
		t.Errorf("first line %q", first)
	}
	if !strings.Contains(out, "mapping udp 40000->40000 added and deleted") {
		t.Errorf("output:\n%s", out)
	}
}

func TestPortmapFlagsAndErrors(t *testing.T) {
	if _, err := runPortmapCmd(t, fakePortmap, "-6"); !isExit(err, ExitUsage) {
		t.Errorf("-6: %v, want usage error", err)
	}
	if _, err := runPortmapCmd(t, fakePortmap, "--hold", "-1s"); !isExit(err, ExitUsage) {
		t.Errorf("--hold -1s: %v, want usage error", err)
	}
	noGW := func(context.Context, portmap.Options) (*portmap.Report, error) { return nil, portmap.ErrNoGateway }
	if _, err := runPortmapCmd(t, noGW, "--no-stun"); !isExit(err, ExitFailure) || !errors.Is(err, portmap.ErrNoGateway) {
		t.Errorf("no gateway: %v, want exit 1", err)
	}
}

// isExit tells whether Execute would exit with code for err.
func isExit(err error, code int) bool {
	return exitCode(context.Background(), err) == code
}

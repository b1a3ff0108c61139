package e2e

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/report"
)

// cloudServe starts natcheck serve in the cloud VM on its private
// addresses (with --advertise of the public ones if advertise) and waits
// until it answers on the first public address, through the 1:1 NAT.
func cloudServe(t *testing.T, l *lab.Lab, c *lab.CloudServer, advertise bool) *exec.Cmd {
	t.Helper()
	args := []string{"serve", "--listen", c.PrivateIPs[0].String()}
	if advertise {
		args = append(args, "--advertise", c.PublicIPs[0].String())
	}
	args = append(args, "--listen", c.PrivateIPs[1].String())
	if advertise {
		args = append(args, "--advertise", c.PublicIPs[1].String())
	}
	cmd := l.Start(t, c.Host, lab.BuildNatcheck(t), args...)
	waitUDP(t, l, netip.AddrPortFrom(c.PublicIPs[0], 3478))
	return cmd
}

// stopServe ends a served binary (SIGTERM: exit 0 expected) and waits.
func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("natcheck serve: %v", err)
	}
}

// clientRun is what one third-party or natcheck client said.
type clientRun struct {
	out  string
	code int
	took time.Duration
}

func runIn(t *testing.T, l *lab.Lab, name string, args ...string) clientRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Command(ctx, l.Client, name, args...).CombinedOutput()
	r := clientRun{out: string(out), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return r
}

// stunVerdict is the NAT type the RFC 3489 stun client (stun-client)
// encodes in its exit status: bits 1-3 name the type (0x02 independent
// filter, 0x04 address-dependent filter, 0x06 port-dependent filter,
// 0x08 dependent mapping, 0x0A firewall, 0x0C blocked, 0x0E unknown); 0x01
// says ports are preserved and 0x10 that the NAT does not hairpin.
func stunVerdict(code int) int { return code & 0x0E }

// TestServeAdvertise runs natcheck serve in a cloud VM behind a 1:1 NAT
// (lab.AddCloudServer: private 172.31.0.10 and .11, public 203.0.113.20
// and .21, a security group open on UDP and TCP 3478-3479 only) and points
// natcheck type, natcheck tcp, coturn's turnutils_natdiscovery and the
// RFC 3489 stun client at its public address. With --advertise all of
// them name the client's NAT right; without it natcheck says unknown (its
// tests were sent to an unroutable private address) and, behind the
// symmetric NAT, the two third-party clients say something false: their
// mapping test went to the private OTHER-ADDRESS (CHANGED-ADDRESS), got
// no answer, and they took the silence for endpoint-independent mapping.
// (Behind the full cone they happen to be right without it: their
// filtering tests only check that an answer came, not from where.)
func TestServeAdvertise(t *testing.T) {
	lab.Require(t)
	// A race-instrumented binary sleeps 1 s at exit by default; eight runs
	// of natcheck per NAT would spend most of the test asleep.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	for _, tool := range []string{"turnutils_natdiscovery", "stun"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (Debian packages coturn and stun-client)", tool)
		}
	}
	const (
		eim  = "NAT with Endpoint Independent Mapping!"
		apdm = "NAT with Address and Port Dependent Mapping!"
		eif  = "NAT with Endpoint Independent Filtering!"
	)
	for _, tc := range []struct {
		kind lab.Kind
		// natdiscovery's options and verdicts with --advertise; for the
		// symmetric NAT the mapping test alone (-f would wait out two 3 s
		// timeouts to learn what natcheck already checks).
		ndArgs             []string
		ndMapping, ndFilt  string
		stunWith           int
		tcpMapping         nat.Mapping
		ndWithout          string // natdiscovery's false mapping without --advertise; "" when not checked
		stunWithout        int    // the stun client's false verdict without it; 0 when not checked
		stunWithoutPrinted string
	}{
		{kind: lab.FullCone, ndArgs: []string{"-m", "-f"}, ndMapping: eim, ndFilt: eif, stunWith: 0x02, tcpMapping: "endpoint-independent"},
		{kind: lab.Symmetric, ndArgs: []string{"-m"}, ndMapping: apdm, stunWith: 0x08, tcpMapping: "address-and-port-dependent",
			ndWithout: eim, stunWithout: 0x06, stunWithoutPrinted: "Primary: Independent Mapping, Port Dependent Filter"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{Kind: tc.kind})
			c := l.AddCloudServer(t)
			server := c.PublicIPs[0].String()
			want := typeVerdicts[tc.kind]

			srv := cloudServe(t, l, c, true)
			got := decodeJSON[report.TypeJSON](t, natcheck(t, l, "type", "--json", "-s", server))
			if class := classifyVerdict(got, want, l.PublicIP.String()); class != "right" {
				t.Errorf("with --advertise: natcheck type says %s/%s/%s (%s), want %s/%s/%s\n  %s",
					got.Type, got.Mapping, got.Filtering, class, want.typ, want.mapping, want.filtering, strings.Join(got.Evidence, "\n  "))
			}
			tcp := decodeJSON[report.TCPMappingJSON](t, natcheck(t, l, "tcp", "--json", "-s", server))
			if tcp.Mapping != tc.tcpMapping {
				t.Errorf("with --advertise: natcheck tcp says %s (%s), want %s", tcp.Mapping, tcp.Reason, tc.tcpMapping)
			}
			nd := runIn(t, l, "turnutils_natdiscovery", append(tc.ndArgs, server)...)
			if m, f := natdiscoveryVerdict(nd.out); nd.code != 0 || m != tc.ndMapping || f != tc.ndFilt {
				t.Errorf("with --advertise: turnutils_natdiscovery %v says %q / %q (exit %d), want %q / %q\n%s", tc.ndArgs, m, f, nd.code, tc.ndMapping, tc.ndFilt, nd.out)
			}
			st := runIn(t, l, "stun", server)
			if stunVerdict(st.code) != tc.stunWith {
				t.Errorf("with --advertise: stun exits %#x, want type %#x\n%s", st.code, tc.stunWith, st.out)
			}
			t.Logf("with --advertise: natcheck type %s, natcheck tcp %s, natdiscovery %q/%q in %v, stun %#x in %v",
				got.Type, tcp.Mapping, tc.ndMapping, tc.ndFilt, nd.took.Round(time.Millisecond), st.code, st.took.Round(time.Millisecond))
			stopServe(t, srv)

			cloudServe(t, l, c, false)
			got = decodeJSON[report.TypeJSON](t, natcheck(t, l, "type", "--json", "-s", server))
			evidence := strings.Join(got.Evidence, "\n  ")
			if class := classifyVerdict(got, want, l.PublicIP.String()); class != "unknown" || got.Type != "unknown" || !strings.Contains(evidence, c.PrivateIPs[1].String()) {
				t.Errorf("without --advertise: natcheck type says %s/%s/%s (%s), want unknown, with the private %s in the evidence\n  %s",
					got.Type, got.Mapping, got.Filtering, class, c.PrivateIPs[1], evidence)
			}
			tcp = decodeJSON[report.TCPMappingJSON](t, natcheck(t, l, "tcp", "--json", "-s", server))
			if tcp.Mapping != "unknown" {
				t.Errorf("without --advertise: natcheck tcp says %s (%s), want unknown", tcp.Mapping, tcp.Reason)
			}
			if tc.ndWithout != "" {
				nd = runIn(t, l, "turnutils_natdiscovery", "-m", server)
				if m, _ := natdiscoveryVerdict(nd.out); m != tc.ndWithout {
					t.Errorf("without --advertise: turnutils_natdiscovery -m says %q, want the false %q\n%s", m, tc.ndWithout, nd.out)
				}
				t.Logf("without --advertise: natdiscovery -m says %q in %v", tc.ndWithout, nd.took.Round(time.Millisecond))
			}
			if tc.stunWithout != 0 {
				st = runIn(t, l, "stun", server)
				if stunVerdict(st.code) != tc.stunWithout || !strings.Contains(st.out, tc.stunWithoutPrinted) {
					t.Errorf("without --advertise: stun exits %#x, want the false type %#x (%q)\n%s", st.code, tc.stunWithout, tc.stunWithoutPrinted, st.out)
				}
				t.Logf("without --advertise: stun %#x in %v", st.code, st.took.Round(time.Millisecond))
			}
		})
	}
}

// natdiscoveryVerdict picks turnutils_natdiscovery's verdict lines.
func natdiscoveryVerdict(out string) (mapping, filtering string) {
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasSuffix(line, "Mapping!") || strings.HasPrefix(line, "No NAT!"):
			mapping = line
		case strings.HasSuffix(line, "Filtering!"):
			filtering = line
		}
	}
	return mapping, filtering
}

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// natcheck turn end to end: the client behind a lab NAT, coturn in the
// internet namespace in every configuration lab.StartCoturn offers. Each
// case asserts the exit code, the JSON verdict, failed step, error code
// and cause, and that no secret (password, REST secret, derived REST
// password) appears in stdout or stderr. The lab side of every
// configuration is checked with coturn's own client in lab/turn_test.go.

// The JSON of natcheck turn (schema_version 1), decoded here rather than
// from the report package so the tests state the contract themselves.
type turnJSON struct {
	SchemaVersion int              `json:"schema_version"`
	Servers       []turnServerJSON `json:"servers"`
	ElapsedMs     float64          `json:"elapsed_ms"`
}

type turnServerJSON struct {
	Server           string  `json:"server"`
	Transport        string  `json:"transport"`
	Address          string  `json:"address"`
	Verdict          string  `json:"verdict"`
	FailedStep       string  `json:"failed_step"`
	ErrorCode        int     `json:"error_code"`
	Cause            string  `json:"cause"`
	Steps            []step  `json:"steps"`
	RelayedAddress   string  `json:"relayed_address"`
	RelayedFamily    string  `json:"relayed_family"`
	ReflexiveAddress string  `json:"reflexive_address"`
	LifetimeS        float64 `json:"lifetime_s"`
	Software         string  `json:"software"`
	Realm            string  `json:"realm"`
	Packets          *struct {
		Sent     int     `json:"sent"`
		Received int     `json:"received"`
		Loss     float64 `json:"loss"`
		RTTMs    float64 `json:"rtt_ms"`
		JitterMs float64 `json:"jitter_ms"`
	} `json:"packets"`
	ElapsedMs float64 `json:"elapsed_ms"`
}

type step struct {
	Name      string  `json:"name"`
	OK        bool    `json:"ok"`
	ElapsedMs float64 `json:"elapsed_ms"`
	Error     string  `json:"error"`
}

// Lab credentials. The secrets are distinctive strings, so a grep of the
// output finds any leak.
const (
	turnUser      = "alice"
	turnPass      = "pw-Kx93vQ2m"
	turnWrongPass = "pw-Wr0ngZ7t"
	turnSecret    = "rest-Hs72pLq9"
	turnName      = "turn.lab.example"
)

// turnSteps are the steps of a relay that works, in order: the checks,
// then the clean-up that deletes both allocations.
var turnSteps = []string{"reach", "auth", "allocate", "permission", "channel-bind", "data", "refresh", "delete"}

// requireTurn skips t until natcheck has the turn command (it is written
// on another branch): with it, NATCHECK_LAB=1 makes these tests run.
func requireTurn(t *testing.T) string {
	t.Helper()
	lab.Require(t)
	lab.RequireCoturn(t)
	bin := lab.BuildNatcheck(t)
	out, err := exec.Command(bin, "turn", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--secret") {
		t.Skip("natcheck has no turn command yet")
	}
	return bin
}

// turnRun is one run of natcheck turn in the client namespace.
type turnRun struct {
	result
	json turnJSON
	args []string
}

// runTurn runs natcheck turn with env added to the environment.
func runTurn(t *testing.T, l *lab.Lab, env []string, args ...string) turnRun {
	t.Helper()
	bin := lab.BuildNatcheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := l.Command(ctx, l.Client, bin, append([]string{"turn"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := turnRun{result: result{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}, args: args}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("run natcheck turn: %v", err)
	}
	return r
}

// turnCase is one run and what it must show.
type turnCase struct {
	name string
	env  []string
	args []string
	code int // anyCode: 0, 3 or 5 (several servers with different verdicts)
	// For the first server of the JSON (when args have --json):
	verdict, failedStep string
	errorCode           int
	cause               []string // substrings of cause, all required
	check               func(t *testing.T, r turnRun)
}

// anyCode accepts any verdict's exit code: the contract does not say which
// one several servers with different verdicts give.
const anyCode = -100

// runTurnCases runs every case at once (they wait on the network, and
// t.Parallel would run only GOMAXPROCS at a time), then checks each in
// its own subtest.
func runTurnCases(t *testing.T, l *lab.Lab, secrets []string, cases []turnCase) {
	t.Helper()
	runs := make([]turnRun, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = runTurn(t, l, tc.env, tc.args...)
		}()
	}
	wg.Wait()
	for i, tc := range cases {
		r := runs[i]
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("natcheck turn %s -> exit %d in %v\nstdout: %s\nstderr: %s", strings.Join(r.args, " "),
				r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
			noSecrets(t, r, secrets)
			if tc.code == anyCode {
				if r.code != 0 && r.code != 3 && r.code != 5 {
					t.Errorf("exit %d, want 0, 3 or 5", r.code)
				}
			} else if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			if slices.Contains(tc.args, "--json") && tc.code != 2 {
				r.json = decodeJSON[turnJSON](t, r.result)
				if r.json.SchemaVersion != 1 || len(r.json.Servers) == 0 {
					t.Fatalf("schema_version %d, %d servers; want 1 and at least one", r.json.SchemaVersion, len(r.json.Servers))
				}
				s := r.json.Servers[0]
				if tc.verdict != "" && s.Verdict != tc.verdict {
					t.Errorf("verdict %q, want %q", s.Verdict, tc.verdict)
				}
				if s.FailedStep != tc.failedStep && !(tc.failedStep == "*" && s.FailedStep != "") {
					t.Errorf("failed_step %q, want %q", s.FailedStep, tc.failedStep)
				}
				if tc.errorCode != 0 && s.ErrorCode != tc.errorCode {
					t.Errorf("error_code %d, want %d", s.ErrorCode, tc.errorCode)
				}
				for _, c := range tc.cause {
					if !strings.Contains(strings.ToLower(s.Cause), strings.ToLower(c)) {
						t.Errorf("cause %q does not say %q", s.Cause, c)
					}
				}
				if s.Verdict == "failed" || s.Verdict == "unreachable" {
					checkFailedStep(t, s)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// noSecrets fails t if any secret appears in the run's output.
func noSecrets(t *testing.T, r turnRun, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("a secret (%d characters, starting %q) appears in the output", len(s), s[:3])
		}
	}
}

// checkFailedStep: the step named failed_step is the last one and not ok,
// every step before it is ok.
func checkFailedStep(t *testing.T, s turnServerJSON) {
	t.Helper()
	if s.FailedStep == "" || len(s.Steps) == 0 {
		return
	}
	// The allocations made before the failure are still deleted: a
	// "delete" step may follow the failed one.
	steps := s.Steps
	for len(steps) > 1 && steps[len(steps)-1].Name == "delete" && s.FailedStep != "delete" {
		steps = steps[:len(steps)-1]
	}
	last := steps[len(steps)-1]
	if last.Name != s.FailedStep || last.OK {
		t.Errorf("last check %+v; want %q, not ok", last, s.FailedStep)
	}
	for _, st := range steps[:len(steps)-1] {
		if !st.OK {
			t.Errorf("step %+v before the failed one is not ok", st)
		}
	}
}

// relayWorks checks a working relay's JSON in full: every step ok in
// order, the relayed address in coturn's relay range, the reflexive
// address the NAT's public IP, lifetime, SOFTWARE, realm, and every packet
// back.
func relayWorks(l *lab.Lab, c *lab.Coturn, transport string, packets int) func(t *testing.T, r turnRun) {
	return func(t *testing.T, r turnRun) {
		t.Helper()
		s := r.json.Servers[0]
		if s.Transport != transport {
			t.Errorf("transport %q, want %q", s.Transport, transport)
		}
		var names []string // without "tls", which only TLS has, after reach
		for _, st := range s.Steps {
			if st.Name != "tls" {
				names = append(names, st.Name)
			}
			if !st.OK || st.Error != "" || st.ElapsedMs < 0 {
				t.Errorf("step %+v; want ok, no error", st)
			}
		}
		if !slices.Equal(names, turnSteps) {
			t.Errorf("steps %+v, want %v (and tls for turns:)", s.Steps, turnSteps)
		}
		if hasTLS := slices.ContainsFunc(s.Steps, func(st step) bool { return st.Name == "tls" }); hasTLS != (transport == "tls") {
			t.Errorf("steps %+v: a tls step only for turns:", s.Steps)
		}
		relayed, err := netip.ParseAddrPort(s.RelayedAddress)
		if err != nil || relayed.Addr() != c.IP || int(relayed.Port()) < c.MinPort || int(relayed.Port()) > c.MaxPort {
			t.Errorf("relayed_address %q; want %s in ports %d-%d", s.RelayedAddress, c.IP, c.MinPort, c.MaxPort)
		}
		if !strings.Contains(strings.ToLower(s.RelayedFamily), "4") {
			t.Errorf("relayed_family %q; want IPv4", s.RelayedFamily)
		}
		if refl, err := netip.ParseAddrPort(s.ReflexiveAddress); err != nil || refl.Addr() != l.PublicIP {
			t.Errorf("reflexive_address %q; want %s:port", s.ReflexiveAddress, l.PublicIP)
		}
		if s.LifetimeS <= 0 || !strings.Contains(s.Software, "Coturn") || s.Realm != c.Realm {
			t.Errorf("lifetime %v software %q realm %q; want > 0, Coturn, %q", s.LifetimeS, s.Software, s.Realm, c.Realm)
		}
		if p := s.Packets; p == nil || p.Sent != packets || p.Received != packets || p.Loss != 0 || p.RTTMs <= 0 || p.JitterMs < 0 {
			t.Errorf("packets %+v; want %d sent and received, no loss, an RTT", p, packets)
		}
		if s.Cause != "" || s.ErrorCode != 0 {
			t.Errorf("cause %q error_code %d for a working relay", s.Cause, s.ErrorCode)
		}
	}
}

// turnServers is the set of coturn configurations of one lab.
type turnServers struct {
	lt, rest, denied, quota, capacity, noUDPRelay, noData, noUDP, private, external, expired, wrongName *lab.Coturn
	silent                                                                                              netip.AddrPort
	ca, otherCA                                                                                         *lab.CA
}

func startTurnServers(t *testing.T, l *lab.Lab) *turnServers {
	t.Helper()
	users := map[string]string{turnUser: turnPass}
	s := &turnServers{ca: lab.NewCA(t, "lab CA"), otherCA: lab.NewCA(t, "another CA")}
	good := s.ca.Issue(t, lab.CertOptions{Names: []string{turnName}})
	l.AddHosts(t, l.Client, map[string]netip.Addr{turnName: l.ServerIPs[0]})
	s.lt = l.StartCoturn(t, lab.CoturnOptions{Users: users, TLSPort: 5349, Cert: good})
	s.rest = l.StartCoturn(t, lab.CoturnOptions{Port: 3490, Secret: turnSecret})
	s.denied = l.StartCoturn(t, lab.CoturnOptions{Port: 3500, Users: users, DeniedPeers: []string{"203.0.113.0-203.0.113.255"}})
	s.quota = l.StartCoturn(t, lab.CoturnOptions{Port: 3510, Users: users, UserQuota: 1})
	s.capacity = l.StartCoturn(t, lab.CoturnOptions{Port: 3520, Users: users, RelayPorts: [2]int{60000, 60000}})
	s.noUDPRelay = l.StartCoturn(t, lab.CoturnOptions{Port: 3530, Users: users, NoUDPRelay: true})
	s.noData = l.StartCoturn(t, lab.CoturnOptions{Port: 3540, Users: users, NoRelayData: true})
	s.noUDP = l.StartCoturn(t, lab.CoturnOptions{Port: 3550, Users: users, NoUDP: true, TLSPort: 5359, Cert: good})
	s.private = l.StartCoturn(t, lab.CoturnOptions{Port: 3478, Users: users, Private: true})
	s.external = l.StartCoturn(t, lab.CoturnOptions{Port: 3560, Users: users, Private: true, ExternalIP: true})
	s.expired = l.StartCoturn(t, lab.CoturnOptions{Port: 3570, Users: users, TLSPort: 5369,
		Cert: s.ca.Issue(t, lab.CertOptions{Names: []string{turnName},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})})
	s.wrongName = l.StartCoturn(t, lab.CoturnOptions{Port: 3590, Users: users, TLSPort: 5379,
		Cert: s.ca.Issue(t, lab.CertOptions{Names: []string{"other.lab.example"}})})
	s.silent = netip.AddrPortFrom(l.ServerIPs[0], 3580)
	l.DropUDP(t, l.Internet, s.silent)
	return s
}

func turnURI(c *lab.Coturn, transport string) string {
	switch transport {
	case "tcp":
		return fmt.Sprintf("turn:%s?transport=tcp", c.Addr())
	case "tls":
		return fmt.Sprintf("turns:%s:%d", turnName, c.TLSPort)
	}
	return "turn:" + c.Addr().String()
}

// Every step and every failure cause, from behind a port-restricted cone
// and a symmetric NAT (both labs at once).
func TestTurnBehindNAT(t *testing.T) {
	requireTurn(t)
	for _, kind := range []lab.Kind{lab.PortRestrictedCone, lab.Symmetric} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{Kind: kind})
			s := startTurnServers(t, l)
			dir := t.TempDir()
			passFile := filepath.Join(dir, "password")
			secretFile := filepath.Join(dir, "secret")
			if err := os.WriteFile(passFile, []byte(turnPass+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(secretFile, []byte(turnSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			expUser, expPass := lab.RESTCredentials(turnSecret, turnUser, time.Now().Add(-time.Hour))
			secrets := []string{turnPass, turnWrongPass, turnSecret, expPass}
			lt := []string{"--user", turnUser, "--password", turnPass}
			ca := []string{"--ca", s.ca.File}
			cases := []turnCase{
				{name: "works-udp", args: append([]string{"--json", "-s", turnURI(s.lt, "udp")}, lt...),
					code: 0, verdict: "works", check: relayWorks(l, s.lt, "udp", 20)},
				{name: "works-tcp-password-env", env: []string{"NATCHECK_TURN_PASSWORD=" + turnPass},
					args: []string{"--json", "--packets", "5", "-s", turnURI(s.lt, "tcp"), "--user", turnUser},
					code: 0, verdict: "works", check: relayWorks(l, s.lt, "tcp", 5)},
				{name: "works-tls-password-file", args: append([]string{"--json", "-s", turnURI(s.lt, "tls"), "--user", turnUser, "--password-file", passFile}, ca...),
					code: 0, verdict: "works", check: relayWorks(l, s.lt, "tls", 20)},
				{name: "plain-verbose", args: append([]string{"-v", "-s", turnURI(s.lt, "udp")}, lt...), code: 0,
					check: func(t *testing.T, r turnRun) {
						first, _, _ := strings.Cut(r.stdout, "\n")
						if !strings.Contains(first, "relay works") || !strings.Contains(first, "20/20") {
							t.Errorf("first line %q; want \"relay works: 20/20 ...\"", first)
						}
						for _, st := range turnSteps {
							if !strings.Contains(r.stdout+r.stderr, st) {
								t.Errorf("-v does not show the step %q", st)
							}
						}
					}},
				{name: "wrong-password", args: []string{"--json", "-s", turnURI(s.lt, "udp"), "--user", turnUser, "--password", turnWrongPass},
					code: 5, verdict: "failed", failedStep: "auth", errorCode: 401, cause: []string{"wrong user or password"}},
				{name: "rest-secret", args: []string{"--json", "-s", turnURI(s.rest, "udp"), "--user", turnUser, "--secret", turnSecret},
					code: 0, verdict: "works", check: relayWorks(l, s.rest, "udp", 20)},
				{name: "rest-secret-env", env: []string{"NATCHECK_TURN_SECRET=" + turnSecret},
					args: []string{"--json", "--packets", "5", "-s", turnURI(s.rest, "udp"), "--user", turnUser},
					code: 0, verdict: "works"},
				{name: "rest-secret-file", args: []string{"--json", "--packets", "5", "-s", turnURI(s.rest, "tcp"), "--user", turnUser, "--secret-file", secretFile},
					code: 0, verdict: "works"},
				// Expired REST credentials, made here (the command may
				// refuse a negative --ttl).
				{name: "rest-expired", args: []string{"--json", "-s", turnURI(s.rest, "udp"), "--user", expUser, "--password", expPass},
					code: 5, verdict: "failed", failedStep: "auth", errorCode: 401, cause: []string{"expired", "clock"}},
				{name: "denied-peer", args: append([]string{"--json", "-s", turnURI(s.denied, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "permission", errorCode: 403, cause: []string{"denies that peer address"}},
				{name: "user-quota", args: append([]string{"--json", "-s", turnURI(s.quota, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "allocate", errorCode: 486, cause: []string{"allocation quota"}},
				{name: "capacity", args: append([]string{"--json", "-s", turnURI(s.capacity, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "allocate", errorCode: 508, cause: []string{"capacity"}},
				{name: "no-udp-relay", args: append([]string{"--json", "-s", turnURI(s.noUDPRelay, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "allocate", errorCode: 442, cause: []string{"transport not supported"}},
				{name: "no-data", args: append([]string{"--json", "--packets", "5", "--timeout", "3s", "-s", turnURI(s.noData, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "data", cause: []string{"carries no data"},
					check: func(t *testing.T, r turnRun) {
						if p := r.json.Servers[0].Packets; p == nil || p.Received != 0 || p.Sent == 0 {
							t.Errorf("packets %+v; want sent, none received", p)
						}
						if a := r.json.Servers[0].RelayedAddress; a == "" {
							t.Error("no relayed_address: the allocation succeeded")
						}
					}},
				// --no-udp: the UDP port is closed (ICMP port unreachable),
				// TCP and TLS relay.
				{name: "no-udp-over-udp", args: append([]string{"--json", "--timeout", "3s", "-s", turnURI(s.noUDP, "udp")}, lt...),
					code: 3, verdict: "unreachable", failedStep: "reach"},
				{name: "no-udp-over-tcp", args: append([]string{"--json", "--packets", "5", "-s", turnURI(s.noUDP, "tcp")}, lt...),
					code: 0, verdict: "works"},
				{name: "no-udp-over-tls", args: append(append([]string{"--json", "--packets", "5", "-s", turnURI(s.noUDP, "tls")}, lt...), ca...),
					code: 0, verdict: "works"},
				// A relay behind NAT without external-ip hands out its
				// private address: useless to any peer elsewhere.
				{name: "private-relayed-address", args: append([]string{"--json", "-s", turnURI(s.private, "udp")}, lt...),
					code: 5, verdict: "failed", failedStep: "*", cause: []string{"private", "external-ip"},
					check: func(t *testing.T, r turnRun) {
						if a := r.json.Servers[0].RelayedAddress; !strings.HasPrefix(a, lab.PrivateRelayIP.String()+":") {
							t.Errorf("relayed_address %q; want the private %s", a, lab.PrivateRelayIP)
						}
					}},
				{name: "external-ip", args: append([]string{"--json", "-s", turnURI(s.external, "udp")}, lt...),
					code: 0, verdict: "works", check: relayWorks(l, s.external, "udp", 20)},
				// Silent: bounded by --timeout.
				{name: "silent", args: append([]string{"--json", "--timeout", "2s", "-s", "turn:" + s.silent.String()}, lt...),
					code: 3, verdict: "unreachable", failedStep: "reach", cause: []string{"no answer over UDP"},
					check: func(t *testing.T, r turnRun) {
						if r.json.ElapsedMs > 3000 || r.elapsed > 8*time.Second {
							t.Errorf("took %.0f ms (process %v) with --timeout 2s", r.json.ElapsedMs, r.elapsed)
						}
					}},
				{name: "tls-expired", args: append(append([]string{"--json", "-s", turnURI(s.expired, "tls")}, lt...), ca...),
					code: 5, verdict: "failed", failedStep: "tls", cause: []string{"certificate", "expired"}},
				{name: "tls-wrong-name", args: append(append([]string{"--json", "-s", turnURI(s.wrongName, "tls")}, lt...), ca...),
					code: 5, verdict: "failed", failedStep: "tls", cause: []string{"certificate", "name"}},
				{name: "tls-unknown-authority", args: append([]string{"--json", "-s", turnURI(s.lt, "tls")}, lt...),
					code: 5, verdict: "failed", failedStep: "tls", cause: []string{"certificate", "unknown authority"}},
				{name: "tls-other-ca", args: append([]string{"--json", "-s", turnURI(s.lt, "tls"), "--ca", s.otherCA.File}, lt...),
					code: 5, verdict: "failed", failedStep: "tls", cause: []string{"certificate", "unknown authority"}},
				{name: "tls-insecure", args: append([]string{"--json", "--packets", "5", "--insecure", "-s", turnURI(s.wrongName, "tls")}, lt...),
					code: 0, verdict: "works"},
				// Two servers at once: one verdict each, in the order given.
				{name: "two-servers", args: append([]string{"--json", "--packets", "5", "-s", turnURI(s.lt, "udp"), "-s", turnURI(s.denied, "udp")}, lt...),
					code: anyCode, check: func(t *testing.T, r turnRun) {
						if n := len(r.json.Servers); n != 2 {
							t.Fatalf("%d servers, want 2", n)
						}
						if a, b := r.json.Servers[0], r.json.Servers[1]; a.Verdict != "works" || b.Verdict != "failed" || b.ErrorCode != 403 {
							t.Errorf("verdicts %q and %q (%d); want works, then failed with 403", a.Verdict, b.Verdict, b.ErrorCode)
						}
					}},
				{name: "usage-bad-uri", args: append([]string{"--json", "-s", "http://" + s.lt.Addr().String()}, lt...), code: 2,
					check: func(t *testing.T, r turnRun) {
						if r.stdout != "" {
							t.Errorf("stdout %q on a usage error", r.stdout)
						}
					}},
			}
			runTurnCases(t, l, secrets, cases)
		})
	}
}

// UDP blocked at the client's router: turn: over UDP gets no answer
// (exit 3, bounded by --timeout), turns: and TCP relay.
func TestTurnUDPBlocked(t *testing.T) {
	requireTurn(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Kind: lab.UDPBlocked})
	ca := lab.NewCA(t, "lab CA")
	l.AddHosts(t, l.Client, map[string]netip.Addr{turnName: l.ServerIPs[0]})
	c := l.StartCoturn(t, lab.CoturnOptions{Users: map[string]string{turnUser: turnPass}, TLSPort: 5349,
		Cert: ca.Issue(t, lab.CertOptions{Names: []string{turnName}})})
	lt := []string{"--user", turnUser, "--password", turnPass, "--ca", ca.File}
	cases := []turnCase{
		{name: "udp", args: append([]string{"--json", "--timeout", "2s", "-s", turnURI(c, "udp")}, lt...),
			code: 3, verdict: "unreachable", failedStep: "reach", cause: []string{"no answer over UDP"},
			check: func(t *testing.T, r turnRun) {
				if r.json.ElapsedMs > 3000 || r.elapsed > 8*time.Second {
					t.Errorf("took %.0f ms (process %v) with --timeout 2s", r.json.ElapsedMs, r.elapsed)
				}
			}},
		{name: "turns", args: append([]string{"--json", "-s", turnURI(c, "tls")}, lt...),
			code: 0, verdict: "works", check: relayWorks(l, c, "tls", 20)},
		{name: "tcp", args: append([]string{"--json", "--packets", "5", "-s", turnURI(c, "tcp")}, lt...),
			code: 0, verdict: "works"},
		{name: "udp-and-turns", args: append([]string{"--json", "--timeout", "2s", "--packets", "5", "-s", turnURI(c, "udp"), "-s", turnURI(c, "tls")}, lt...),
			code: anyCode, failedStep: "reach", check: func(t *testing.T, r turnRun) {
				if n := len(r.json.Servers); n != 2 {
					t.Fatalf("%d servers, want 2", n)
				}
				u, s := r.json.Servers[0], r.json.Servers[1]
				if u.Verdict != "unreachable" || !strings.Contains(u.Cause, "no answer over UDP") || s.Verdict != "works" || s.Transport != "tls" {
					t.Errorf("udp %q (%q), tls %q (%q); want unreachable with no answer over UDP, and works", u.Verdict, u.Cause, s.Verdict, s.Transport)
				}
			}},
	}
	runTurnCases(t, l, []string{turnPass}, cases)
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// natcheck peer end to end, against the contract of issue 11 (see
// docs/lab.md, "Two sites"): two clients in a lab.Pair, natcheck serve
// (with --rendezvous when the binary has it) on both server addresses, and
// coturn for the TURN cells. Both ways of meeting:
//   - tickets: A runs `natcheck peer --answer PATH`, its stderr line
//     "ticket: T" is given to B as `natcheck peer T`, and B's stderr line
//     "answer: U" is written (atomically) to PATH;
//   - rendezvous: A runs `natcheck peer --via SERVER`, its stderr line
//     "code: C" is given to B as `natcheck peer --via SERVER C`.
//
// Every run of the matrix is checked on both sides: exit code (0 direct,
// 6 relayed, 3 failed), outcome, role, meeting, predicted outcome and
// prediction_matched, each side's NAT type as the lab built it, and the
// selected pair (the peer's public address; a relay for the udp-blocked
// side). Many labs run at once (the runs mostly wait on the network);
// their assertions are then made in one subtest per run.

// peerJSON is natcheck peer's --json (schema_version 1), decoded here so
// the tests state the contract themselves.
type peerJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Role          string `json:"role"`
	Meeting       string `json:"meeting"`
	Outcome       string `json:"outcome"`
	SelectedPair  *struct {
		Local      string `json:"local"`
		LocalType  string `json:"local_type"`
		Remote     string `json:"remote"`
		RemoteType string `json:"remote_type"`
		Protocol   string `json:"protocol"`
	} `json:"selected_pair"`
	RTTMs *float64 `json:"rtt_ms"`
	Loss  float64  `json:"loss"`
	Pings struct {
		Sent     int `json:"sent"`
		Received int `json:"received"`
	} `json:"pings"`
	TimeToConnectMs   *float64 `json:"time_to_connect_ms"`
	Predicted         string   `json:"predicted"`
	PredictionMatched *bool    `json:"prediction_matched"`
	Explanation       string   `json:"explanation"`
	TURNProblems      []string `json:"turn_problems"`
	Local             peerSide `json:"local"`
	Remote            peerSide `json:"remote"`
	Pairs             []struct {
		Local     string   `json:"local"`
		Remote    string   `json:"remote"`
		State     string   `json:"state"`
		Nominated bool     `json:"nominated"`
		RTTMs     *float64 `json:"rtt_ms"`
	} `json:"pairs"`
	ElapsedMs float64 `json:"elapsed_ms"`
}

type peerSide struct {
	NAT struct {
		Type          string `json:"type"`
		Mapping       string `json:"mapping"`
		Filtering     string `json:"filtering"`
		PublicAddress string `json:"public_address"`
	} `json:"nat"`
	TURN        bool     `json:"turn"`
	PortMapping []string `json:"port_mapping"`
	Candidates  []struct {
		Type     string `json:"type"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	} `json:"candidates"`
}

// Exit codes of natcheck peer (the contract).
const (
	peerDirect      = 0
	peerFailed      = 3
	peerRelayed     = 6
	peerInterrupted = 130
)

// peerKinds are the issue's table's rows and columns, in its order.
var peerKinds = []lab.Kind{lab.NoNAT, lab.FullCone, lab.RestrictedCone, lab.PortRestrictedCone, lab.Symmetric, lab.UDPBlocked}

// expectedDirect is the issue's table: whether A and B connect directly
// over UDP without TURN (routers that drop unsolicited UDP).
func expectedDirect(a, b lab.Kind) bool {
	if a == lab.UDPBlocked || b == lab.UDPBlocked {
		return false
	}
	hard := func(k lab.Kind) bool { return k == lab.PortRestrictedCone || k == lab.Symmetric }
	return !(a == lab.Symmetric && hard(b) || b == lab.Symmetric && hard(a))
}

// requirePeer skips t until natcheck has the peer command (written on
// another branch; with it NATCHECK_LAB=1 makes these tests run), and
// returns the binary: plain (no -race) when many run at once.
func requirePeer(t *testing.T, plain bool) string {
	t.Helper()
	lab.Require(t)
	bin := lab.BuildNatcheck(t)
	if plain {
		bin = lab.BuildNatcheckPlain(t)
	}
	out, _ := exec.Command(bin, "peer", "--help").CombinedOutput()
	if !strings.Contains(string(out), "--answer") || !strings.Contains(string(out), "--via") {
		t.Skip("natcheck has no peer command yet (`natcheck peer --help` does not show --answer and --via)")
	}
	return bin
}

// hasRendezvous reports whether natcheck serve offers --rendezvous.
func hasRendezvous(bin string) bool {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return strings.Contains(string(out), "--rendezvous")
}

const noRendezvous = "natcheck serve has no --rendezvous yet (`natcheck serve --help` does not mention it)"

// peerServe starts natcheck serve (with --rendezvous when it has it) on
// both server addresses of the pair and waits until it answers.
func peerServe(t *testing.T, p *lab.Pair, bin string) {
	t.Helper()
	args := []string{"serve", "--listen", p.ServerIPs[0].String(), "--listen", p.ServerIPs[1].String()}
	if hasRendezvous(bin) {
		args = append(args, "--rendezvous")
	}
	p.Start(t, p.Internet, bin, args...)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.Command(ctx, p.Internet, bin, "whoami", "--timeout", "300ms", "-s", p.ServerIPs[0].String()).Run()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("natcheck serve did not answer within 10 s")
}

// lineBuffer keeps a process's output and hands out lines with a given
// prefix as they are written.
type lineBuffer struct {
	mu      sync.Mutex
	all     strings.Builder
	partial string
	lines   []string
	changed chan struct{}
}

func newLineBuffer() *lineBuffer { return &lineBuffer{changed: make(chan struct{}, 1)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.all.Write(p)
	b.partial += string(p)
	for {
		line, rest, ok := strings.Cut(b.partial, "\n")
		if !ok {
			break
		}
		b.lines = append(b.lines, strings.TrimRight(line, "\r"))
		b.partial = rest
	}
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all.String()
}

// await returns the rest of the first line starting with prefix, waiting
// up to d (or until done is closed: the process ended).
func (b *lineBuffer) await(prefix string, d time.Duration, done <-chan struct{}) (string, error) {
	deadline := time.After(d)
	for {
		b.mu.Lock()
		for _, l := range b.lines {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				b.mu.Unlock()
				return strings.TrimSpace(rest), nil
			}
		}
		b.mu.Unlock()
		select {
		case <-b.changed:
		case <-done:
			// One last look: the line may have come with the exit.
			select {
			case <-b.changed:
				continue
			default:
			}
			return "", fmt.Errorf("the process ended without a %q line", prefix)
		case <-deadline:
			return "", fmt.Errorf("no %q line within %v", prefix, d)
		}
	}
}

// peerProc is one running natcheck peer.
type peerProc struct {
	cmd    *exec.Cmd
	args   []string
	ns     string
	stdout strings.Builder
	stderr *lineBuffer
	done   chan struct{}
	start  time.Time
	end    time.Time
	code   int
	err    error // could not run at all
}

func startPeer(ctx context.Context, p *lab.Pair, ns, bin string, args ...string) *peerProc {
	pp := &peerProc{ns: ns, args: args, stderr: newLineBuffer(), done: make(chan struct{})}
	pp.cmd = p.Command(ctx, ns, bin, append([]string{"peer"}, args...)...)
	pp.cmd.Stdout, pp.cmd.Stderr = &pp.stdout, pp.stderr
	pp.start = time.Now()
	if err := pp.cmd.Start(); err != nil {
		pp.err = err
		close(pp.done)
		return pp
	}
	go func() {
		err := pp.cmd.Wait()
		pp.end = time.Now()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			pp.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				pp.code = 128 + int(ws.Signal())
			}
		case err != nil:
			pp.err = err
		}
		close(pp.done)
	}()
	return pp
}

// side is what one natcheck peer did.
type side struct {
	args           []string
	stdout, stderr string
	code           int
	elapsed        time.Duration
	json           *peerJSON
	jsonErr        error
}

func (pp *peerProc) result() side {
	<-pp.done
	s := side{args: pp.args, stdout: pp.stdout.String(), stderr: pp.stderr.String(), code: pp.code, elapsed: pp.end.Sub(pp.start)}
	if pp.err != nil {
		s.code = -1
		s.stderr += "\n(run: " + pp.err.Error() + ")"
	}
	if slices.Contains(pp.args, "--json") {
		var j peerJSON
		if err := json.Unmarshal([]byte(s.stdout), &j); err != nil {
			s.jsonErr = err
		} else {
			s.json = &j
		}
	}
	return s
}

// pairRun is one natcheck peer between the two sites.
type pairRun struct {
	meeting string // "ticket" or "rendezvous"
	a, b    side
	// met is when B's answer reached A (tickets) or B started with the
	// code (rendezvous); setupErr says why the sides never met.
	met      time.Time
	setupErr error
	start    time.Time
}

// peerArgs are the flags both sides get: the lab's STUN server and
// whatever the case adds.
func peerArgs(p *lab.Pair, extra ...string) []string {
	return append([]string{"--json", "-s", p.ServerIPs[0].String()}, extra...)
}

// runTickets meets through tickets: A prints its ticket, B answers, the
// answer is written to A's --answer file.
func runTickets(p *lab.Pair, bin, dir string, aArgs, bArgs []string, hook func(a, b *peerProc)) pairRun {
	r := pairRun{meeting: "ticket", start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	answer := filepath.Join(dir, "answer")
	a := startPeer(ctx, p, p.A.Client, bin, slices.Concat(aArgs, []string{"--answer", answer})...)
	ticket, err := a.stderr.await("ticket: ", 20*time.Second, a.done)
	if err != nil {
		r.setupErr = fmt.Errorf("side A: %v", err)
		cancel()
		r.a = a.result()
		return r
	}
	// B awaits A's first check at most --wait (default 2 minutes, for
	// people pasting): the answer is written at once here, so 5 s.
	if !slices.Contains(bArgs, "--wait") {
		bArgs = slices.Concat(bArgs, []string{"--wait", "5s"})
	}
	b := startPeer(ctx, p, p.B.Client, bin, slices.Concat([]string{ticket}, bArgs)...)
	ans, err := b.stderr.await("answer: ", 20*time.Second, b.done)
	if err == nil {
		// Atomically, so A never reads half a line.
		tmp := answer + ".tmp"
		if err = os.WriteFile(tmp, []byte(ans+"\n"), 0o600); err == nil {
			err = os.Rename(tmp, answer)
		}
		r.met = time.Now()
	}
	if err != nil {
		r.setupErr = fmt.Errorf("side B: %v", err)
		cancel()
	} else if hook != nil {
		hook(a, b)
	}
	r.a, r.b = a.result(), b.result()
	return r
}

// runRendezvous meets through natcheck serve --rendezvous: A creates the
// code, B joins with it.
func runRendezvous(p *lab.Pair, bin string, aArgs, bArgs []string, hook func(a, b *peerProc)) pairRun {
	r := pairRun{meeting: "rendezvous", start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	via := p.ServerIPs[0].String()
	a := startPeer(ctx, p, p.A.Client, bin, slices.Concat(aArgs, []string{"--via", via})...)
	code, err := a.stderr.await("code: ", 20*time.Second, a.done)
	if err != nil {
		r.setupErr = fmt.Errorf("side A: %v", err)
		cancel()
		r.a = a.result()
		return r
	}
	r.met = time.Now()
	b := startPeer(ctx, p, p.B.Client, bin, slices.Concat([]string{"--via", via, code}, bArgs)...)
	if hook != nil {
		hook(a, b)
	}
	r.a, r.b = a.result(), b.result()
	return r
}

func (r pairRun) log(t *testing.T) {
	t.Helper()
	for _, s := range []struct {
		name string
		s    side
	}{{"A", r.a}, {"B", r.b}} {
		t.Logf("%s: natcheck peer %s -> exit %d in %v\nstdout: %s\nstderr: %s", s.name, strings.Join(s.s.args, " "),
			s.s.code, s.s.elapsed.Round(time.Millisecond), s.s.stdout, s.s.stderr)
	}
}

// cellWant is what both sides of a run must report.
type cellWant struct {
	a, b      lab.Kind
	outcome   string // direct, relayed, failed
	predicted string // "" = not checked
	matched   *bool  // prediction_matched; nil = not checked
	// orTCP: open x udp-blocked may also connect directly over ICE-TCP
	// (the issue allows it; the outcome then says tcp).
	orTCP bool
	// explain: substrings (any one, case-insensitive) of a failed run's
	// explanation.
	explain []string
	// remoteIPs are the addresses the selected pair's remote may have on
	// A and on B (default: the other site's public address).
	remoteA, remoteB []netip.Addr
}

var exitOf = map[string]int{"direct": peerDirect, "relayed": peerRelayed, "failed": peerFailed}

// natType is the NAT type natcheck type gives each lab kind.
func natType(k lab.Kind) string { return string(typeVerdicts[k].typ) }

// checkRun asserts w on both sides of r.
func checkRun(t *testing.T, p *lab.Pair, r pairRun, w cellWant) {
	t.Helper()
	r.log(t)
	if r.setupErr != nil {
		t.Fatalf("the sides never met: %v", r.setupErr)
	}
	sides := []struct {
		name       string
		s          side
		role       string
		kind, peer lab.Kind
		site       lab.Site
		remote     []netip.Addr
	}{
		{"A", r.a, "controlling", w.a, w.b, p.A, cmpDefault(w.remoteA, p.B.PublicIP)},
		{"B", r.b, "controlled", w.b, w.a, p.B, cmpDefault(w.remoteB, p.A.PublicIP)},
	}
	for _, x := range sides {
		s, j := x.s, x.s.json
		if j == nil {
			t.Errorf("%s: stdout is not JSON: %v", x.name, s.jsonErr)
			continue
		}
		outcome := w.outcome
		if w.orTCP && j.Outcome == "direct" && j.SelectedPair != nil && j.SelectedPair.Protocol == "tcp" {
			outcome = "direct" // over ICE-TCP: allowed for open x udp-blocked
		}
		if s.code != exitOf[outcome] || j.Outcome != outcome {
			t.Errorf("%s: exit %d, outcome %q; want %d, %q", x.name, s.code, j.Outcome, exitOf[outcome], outcome)
		}
		if j.SchemaVersion != 1 || j.Role != x.role || j.Meeting != r.meeting {
			t.Errorf("%s: schema_version %d role %q meeting %q; want 1, %q, %q", x.name, j.SchemaVersion, j.Role, j.Meeting, x.role, r.meeting)
		}
		if got, want := j.Local.NAT.Type, natType(x.kind); got != want {
			t.Errorf("%s: local nat type %q, want %q", x.name, got, want)
		}
		if got, want := j.Remote.NAT.Type, natType(x.peer); got != want {
			t.Errorf("%s: remote nat type %q, want %q", x.name, got, want)
		}
		if w.predicted != "" && j.Predicted != w.predicted {
			t.Errorf("%s: predicted %q, want %q", x.name, j.Predicted, w.predicted)
		}
		if w.matched != nil && (j.PredictionMatched == nil || *j.PredictionMatched != *w.matched) {
			t.Errorf("%s: prediction_matched %v, want %v (explanation %q)", x.name, fmtBoolPtr(j.PredictionMatched), *w.matched, j.Explanation)
		}
		switch outcome {
		case "direct", "relayed":
			sp := j.SelectedPair
			if sp == nil {
				t.Errorf("%s: no selected_pair for a %s outcome", x.name, outcome)
				break
			}
			relay := sp.LocalType == "relay" || sp.RemoteType == "relay"
			if relay != (outcome == "relayed") {
				t.Errorf("%s: selected pair %s %s <-> %s %s for a %s outcome", x.name, sp.LocalType, sp.Local, sp.RemoteType, sp.Remote, outcome)
			}
			if x.kind == lab.UDPBlocked && sp.LocalType != "relay" && sp.Protocol != "tcp" {
				t.Errorf("%s: a udp-blocked side's selected local candidate is %s %s, want its relay", x.name, sp.LocalType, sp.Local)
			}
			if outcome == "direct" {
				if ra, err := netip.ParseAddrPort(sp.Remote); err != nil || !slices.Contains(x.remote, ra.Addr().Unmap()) {
					t.Errorf("%s: selected remote %q, want on %v", x.name, sp.Remote, x.remote)
				}
				if !w.orTCP && sp.Protocol != "udp" {
					t.Errorf("%s: protocol %q, want udp", x.name, sp.Protocol)
				}
			}
			if j.RTTMs == nil || j.TimeToConnectMs == nil || j.Pings.Sent == 0 || j.Pings.Received == 0 {
				t.Errorf("%s: rtt_ms %v time_to_connect_ms %v pings %+v; want measured", x.name, fmtPtr(j.RTTMs), fmtPtr(j.TimeToConnectMs), j.Pings)
			}
		case "failed":
			if j.SelectedPair != nil {
				t.Errorf("%s: selected_pair %+v for a failed outcome", x.name, *j.SelectedPair)
			}
			if j.Explanation == "" {
				t.Errorf("%s: no explanation", x.name)
			} else if len(w.explain) > 0 && !slices.ContainsFunc(w.explain, func(e string) bool {
				return strings.Contains(strings.ToLower(j.Explanation), strings.ToLower(e))
			}) {
				t.Errorf("%s: explanation %q says none of %q", x.name, j.Explanation, w.explain)
			}
		}
	}
	if r.a.json != nil && r.b.json != nil && r.a.json.Outcome != r.b.json.Outcome {
		t.Errorf("the sides disagree: A %q, B %q", r.a.json.Outcome, r.b.json.Outcome)
	}
}

func cmpDefault(a []netip.Addr, d netip.Addr) []netip.Addr {
	if len(a) == 0 {
		return []netip.Addr{d}
	}
	return a
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64)
}

func fmtBoolPtr(p *bool) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatBool(*p)
}

// failCause are the words a failed cell's explanation should use: the
// side that makes it fail.
func failCause(a, b lab.Kind) []string {
	if a == lab.UDPBlocked || b == lab.UDPBlocked {
		return []string{"udp", "blocked"}
	}
	return []string{"symmetric", "mapping"}
}

// peerJob is one lab and the runs made in it, one after the other.
type peerJob struct {
	name string
	opts lab.PairOptions
	// setup (in the test goroutine, after the lab and serve are up).
	setup func(t *testing.T, p *lab.Pair)
	runs  []peerJobRun
	p     *lab.Pair
}

type peerJobRun struct {
	name  string
	needs string // "rendezvous": skipped without natcheck serve --rendezvous
	run   func(p *lab.Pair, dir string) pairRun
	check func(t *testing.T, p *lab.Pair, r pairRun)
	got   pairRun
	dir   string
}

// peerParallel is how many labs run their natcheck peer runs at once
// (NATCHECK_PEER_PARALLEL, default 7): enough to fill the waits, few
// enough that a 2-core machine keeps the ICE timings honest.
func peerParallel() int {
	if n, err := strconv.Atoi(os.Getenv("NATCHECK_PEER_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 7
}

// runPeerJobs builds every job's lab (in the test goroutine), runs the
// jobs' runs with at most peerParallel labs busy at once, then checks
// each run in its own subtest.
func runPeerJobs(t *testing.T, bin string, jobs []*peerJob) {
	t.Helper()
	rdv := hasRendezvous(bin)
	start := time.Now()
	for _, j := range jobs {
		j.p = lab.NewPair(t, j.opts)
		peerServe(t, j.p, bin)
		if j.setup != nil {
			j.setup(t, j.p)
		}
		for i := range j.runs {
			j.runs[i].dir = t.TempDir()
		}
	}
	t.Logf("%d labs built and serving in %v", len(jobs), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	sem := make(chan struct{}, peerParallel())
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for i := range j.runs {
				run := &j.runs[i]
				if run.needs == "rendezvous" && !rdv {
					continue
				}
				run.got = run.run(j.p, run.dir)
			}
		}()
	}
	wg.Wait()
	t.Logf("every run done in %v (%d labs at once)", time.Since(start).Round(time.Millisecond), peerParallel())
	for _, j := range jobs {
		for i := range j.runs {
			run := &j.runs[i]
			t.Run(j.name+"/"+run.name, func(t *testing.T) {
				if run.needs == "rendezvous" && !rdv {
					t.Skip(noRendezvous)
				}
				run.check(t, j.p, run.got)
			})
		}
	}
}

// Lab TURN credentials (as e2e/turn_test.go) and the relay's ports: not
// 3478, which natcheck serve holds.
const (
	peerTurnPort = 3490
	peerTLSPort  = 5349
)

// turnArgs are a side's --turn flags: UDP for every kind but udp-blocked,
// which reaches the relay over TCP (TestPeerTURNTLS: over TLS).
func turnArgs(c *lab.Coturn, kind lab.Kind) []string {
	uri := "turn:" + c.Addr().String()
	if kind == lab.UDPBlocked {
		uri += "?transport=tcp"
	}
	return []string{"--turn", uri, "--user", turnUser, "--password", turnPass}
}

// TestPeerMatrix: the issue's 21 cells, each in its own pair lab (routers
// that drop unsolicited UDP), met by tickets and by rendezvous without
// TURN (direct or failed as the table says, prediction matched), then by
// tickets with coturn as TURN on both sides (every cell connects: direct
// where the table says so, relayed elsewhere; the udp-blocked side over
// TCP).
func TestPeerMatrix(t *testing.T) {
	bin := requirePeer(t, true)
	lab.RequireCoturn(t)
	t.Parallel()
	var jobs []*peerJob
	for i, a := range peerKinds {
		for _, b := range peerKinds[i:] {
			direct := expectedDirect(a, b)
			want := cellWant{a: a, b: b, outcome: "failed", predicted: "failed", matched: yes, explain: failCause(a, b),
				orTCP: a == lab.NoNAT && b == lab.UDPBlocked}
			if direct {
				want.outcome, want.predicted = "direct", "direct"
			}
			withTurn := want
			withTurn.explain = nil
			if !direct {
				withTurn.outcome, withTurn.predicted = "relayed", "relayed"
			}
			var c *lab.Coturn
			job := &peerJob{name: string(a) + "/" + string(b), opts: lab.PairOptions{A: a, B: b},
				setup: func(t *testing.T, p *lab.Pair) {
					c = p.StartCoturn(t, lab.CoturnOptions{Port: peerTurnPort, Users: map[string]string{turnUser: turnPass}})
				}}
			check := func(w cellWant) func(t *testing.T, p *lab.Pair, r pairRun) {
				return func(t *testing.T, p *lab.Pair, r pairRun) { checkRun(t, p, r, w) }
			}
			job.runs = []peerJobRun{
				{name: "ticket", check: check(want), run: func(p *lab.Pair, dir string) pairRun {
					return runTickets(p, bin, dir, peerArgs(p), peerArgs(p), nil)
				}},
				rendezvousRun(bin, a, b, check(want)),
				{name: "turn", check: check(withTurn), run: func(p *lab.Pair, dir string) pairRun {
					return runTickets(p, bin, dir, peerArgs(p, turnArgs(c, a)...), peerArgs(p, turnArgs(c, b)...), nil)
				}},
			}
			jobs = append(jobs, job)
		}
	}
	runPeerJobs(t, bin, jobs)
}

// rendezvousRun meets through natcheck serve --rendezvous. A side whose
// UDP is blocked hears nothing over UDP and moves to TCP on the same port
// after 1 s; its -v says so. After the meeting the cell is checked as by
// tickets.
func rendezvousRun(bin string, a, b lab.Kind, met func(t *testing.T, p *lab.Pair, r pairRun)) peerJobRun {
	args := func(p *lab.Pair, k lab.Kind) []string {
		if k == lab.UDPBlocked {
			return peerArgs(p, "-v")
		}
		return peerArgs(p)
	}
	return peerJobRun{name: "rendezvous", needs: "rendezvous", run: func(p *lab.Pair, dir string) pairRun {
		return runRendezvous(p, bin, args(p, a), args(p, b), nil)
	}, check: func(t *testing.T, p *lab.Pair, r pairRun) {
		met(t, p, r)
		for _, x := range []struct {
			name string
			s    side
			kind lab.Kind
		}{{"A", r.a, a}, {"B", r.b, b}} {
			if x.kind == lab.UDPBlocked && !strings.Contains(x.s.stderr, "(over tcp)") {
				t.Errorf("%s (udp-blocked): -v does not say it met over TCP:\n%s", x.name, x.s.stderr)
			}
		}
	}}
}

// TestPeerSpecial: one LAN (host candidates; with --no-host only through
// a router that hairpins), the router trap (port-restricted cones whose
// routers answer unsolicited UDP: the punch fails and the explanation
// says the mapping toward the peer moved), and a direct and a failing
// pair at 50 ms round trip and 5% loss between the peers.
func TestPeerSpecial(t *testing.T) {
	bin := requirePeer(t, true)
	t.Parallel()
	prc := lab.PortRestrictedCone
	tickets := func(aArgs, bArgs []string) func(p *lab.Pair, dir string) pairRun {
		return func(p *lab.Pair, dir string) pairRun { return runTickets(p, bin, dir, aArgs, bArgs, nil) }
	}
	check := func(w cellWant) func(t *testing.T, p *lab.Pair, r pairRun) {
		return func(t *testing.T, p *lab.Pair, r pairRun) { checkRun(t, p, r, w) }
	}
	stun := "203.0.113.10"
	base := []string{"--json", "-s", stun}
	noHost := []string{"--json", "-s", stun, "--no-host"}
	lanA, lanB := netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.1.3")
	public := netip.MustParseAddr("203.0.113.2")
	jobs := []*peerJob{
		{name: "same-lan", opts: lab.PairOptions{SameLAN: true}, runs: []peerJobRun{
			// Host candidates on one LAN: direct, host to host.
			{name: "host", run: tickets(base, base), check: func(t *testing.T, p *lab.Pair, r pairRun) {
				checkRun(t, p, r, cellWant{a: prc, b: prc, outcome: "direct", remoteA: []netip.Addr{lanB}, remoteB: []netip.Addr{lanA}})
				if sp := r.a.json; sp != nil && sp.SelectedPair != nil && (sp.SelectedPair.LocalType != "host" || sp.SelectedPair.RemoteType != "host") {
					t.Errorf("A: selected %s <-> %s, want host <-> host", sp.SelectedPair.LocalType, sp.SelectedPair.RemoteType)
				}
			}},
			// The plain output: the outcome first.
			{name: "host-plain", run: tickets(base, []string{"-s", stun}), check: func(t *testing.T, p *lab.Pair, r pairRun) {
				r.log(t)
				if r.setupErr != nil {
					t.Fatal(r.setupErr)
				}
				first, _, _ := strings.Cut(r.b.stdout, "\n")
				if r.b.code != peerDirect || !strings.HasPrefix(first, "direct: ") || !strings.Contains(r.b.stdout, "predicted:") {
					t.Errorf("B (plain): exit %d, first line %q; want 0, \"direct: ...\" and a predicted: line", r.b.code, first)
				}
			}},
			// Without host candidates the public mappings meet at a
			// router that does not hairpin: no path.
			{name: "no-host", run: tickets(noHost, noHost), check: check(cellWant{a: prc, b: prc, outcome: "failed"})},
		}},
		{name: "same-lan-hairpin", opts: lab.PairOptions{SameLAN: true, Hairpin: true}, runs: []peerJobRun{
			{name: "no-host", run: tickets(noHost, noHost), check: check(cellWant{a: prc, b: prc, outcome: "direct",
				remoteA: []netip.Addr{public}, remoteB: []netip.Addr{public}})},
		}},
		// The trap: B's checks reach A's router first; it answers with
		// ICMP and keeps a conntrack entry, so A's packets to B leave
		// from another port than the STUN mapping.
		{name: "router-answers", opts: lab.PairOptions{A: prc, B: prc, RouterAnswers: true}, runs: []peerJobRun{
			{name: "ticket", run: tickets(base, base), check: func(t *testing.T, p *lab.Pair, r pairRun) {
				checkRun(t, p, r, cellWant{a: prc, b: prc, outcome: "failed", predicted: "direct", explain: []string{"mapping"}})
				// A started, and says the prediction failed; B heard
				// nothing from A, which may not have started: it cannot
				// tell, and says so.
				if j := r.a.json; j != nil && (j.PredictionMatched == nil || *j.PredictionMatched) {
					t.Errorf("A: prediction_matched %v, want false", fmtBoolPtr(j.PredictionMatched))
				}
				if j := r.b.json; j != nil && (j.PredictionMatched != nil || !strings.Contains(j.Explanation, "no check from A arrived")) {
					t.Errorf("B: prediction_matched %v, explanation %q; want null and no check from A", fmtBoolPtr(j.PredictionMatched), j.Explanation)
				}
			}},
		}},
		{name: "rtt50-loss5-direct", opts: lab.PairOptions{A: prc, B: lab.RestrictedCone, DelayMs: 25, LossPercent: 5}, runs: []peerJobRun{
			{name: "ticket", run: tickets(base, base), check: check(cellWant{a: prc, b: lab.RestrictedCone, outcome: "direct", predicted: "direct", matched: yes})},
		}},
		{name: "rtt50-loss5-failed", opts: lab.PairOptions{A: lab.Symmetric, B: prc, DelayMs: 25, LossPercent: 5}, runs: []peerJobRun{
			{name: "ticket", run: tickets(base, base), check: check(cellWant{a: lab.Symmetric, b: prc, outcome: "failed", predicted: "failed", matched: yes,
				explain: failCause(lab.Symmetric, prc)})},
		}},
	}
	runPeerJobs(t, bin, jobs)
}

// TestPeerInterrupt: Ctrl-C on one side ends both promptly. Tickets,
// connected pair kept busy with many pings: A's SIGINT ends A (130) and
// its bye over the connected path ends B with its outcome and a note that
// the peer left. Rendezvous, a pair that cannot connect (symmetric x
// symmetric, --timeout 60s): the bye goes through the rendezvous.
func TestPeerInterrupt(t *testing.T) {
	bin := requirePeer(t, false) // race-instrumented: signals and shutdown paths
	t.Parallel()
	const prompt = 3 * time.Second
	// after is when each side ended, counted from A's SIGINT.
	type after struct{ a, b time.Duration }
	// interrupt sends A a SIGINT once A's verbose log shows the stage
	// (an event, not a guess of how long the set-up takes).
	interrupt := func(stage string, got *after) func(a, b *peerProc) {
		return func(a, b *peerProc) {
			if _, err := a.stderr.await(stage, 60*time.Second, a.done); err != nil {
				got.a, got.b = -1, -1
				<-b.done
				return
			}
			sent := time.Now()
			_ = a.cmd.Process.Signal(syscall.SIGINT)
			<-a.done
			got.a = time.Since(sent)
			<-b.done
			got.b = time.Since(sent)
		}
	}
	var tick, rdv after
	check := func(meeting string, got *after, bCode int) func(t *testing.T, p *lab.Pair, r pairRun) {
		return func(t *testing.T, p *lab.Pair, r pairRun) {
			r.log(t)
			if r.setupErr != nil {
				t.Fatal(r.setupErr)
			}
			t.Logf("%s: A ended %v after SIGINT, B %v after", meeting, got.a.Round(time.Millisecond), got.b.Round(time.Millisecond))
			if r.a.code != peerInterrupted || got.a > prompt {
				t.Errorf("A: exit %d %v after SIGINT; want %d within %v", r.a.code, got.a, peerInterrupted, prompt)
			}
			if r.b.code != bCode || got.b > prompt {
				t.Errorf("B: exit %d %v after A's SIGINT; want %d within %v", r.b.code, got.b, bCode, prompt)
			}
			if out := strings.ToLower(r.b.stdout + r.b.stderr); !strings.Contains(out, "left") {
				t.Errorf("B does not say the peer left")
			}
		}
	}
	jobs := []*peerJob{
		{name: "ticket-connected", opts: lab.PairOptions{A: lab.PortRestrictedCone, B: lab.FullCone}, runs: []peerJobRun{
			{name: "sigint", check: check("ticket", &tick, peerDirect), run: func(p *lab.Pair, dir string) pairRun {
				args := peerArgs(p, "-v", "--pings", "1000") // 20 s of pings: still running at the SIGINT
				return runTickets(p, bin, dir, args, args, interrupt("[peer] connected", &tick))
			}},
		}},
		{name: "rendezvous-unconnected", opts: lab.PairOptions{A: lab.Symmetric, B: lab.Symmetric}, runs: []peerJobRun{
			{name: "sigint", needs: "rendezvous", check: check("rendezvous", &rdv, peerFailed), run: func(p *lab.Pair, dir string) pairRun {
				args := peerArgs(p, "-v", "--timeout", "60s")
				return runRendezvous(p, bin, args, args, interrupt("[peer] checking", &rdv))
			}},
		}},
	}
	runPeerJobs(t, bin, jobs)
}

// TestPeerUsage: a malformed ticket is a usage error (exit 2) with one
// clear line and nothing on stdout.
// TestPeerTURNTLS: a udp-blocked side reaches coturn over TLS (turns:,
// the lab CA's certificate for the relay's IP) and the other side, behind
// a symmetric NAT, over UDP: with --ca both connect through the relay;
// without it the blocked side gets no relay candidate, nothing connects,
// and its turn_problems and explanation name the refused certificate and
// --ca; with --insecure it connects again.
func TestPeerTURNTLS(t *testing.T) {
	bin := requirePeer(t, true)
	lab.RequireCoturn(t)
	t.Parallel()
	ca := lab.NewCA(t, "lab CA")
	var c *lab.Coturn
	job := &peerJob{name: "udp-blocked/symmetric", opts: lab.PairOptions{A: lab.UDPBlocked, B: lab.Symmetric},
		setup: func(t *testing.T, p *lab.Pair) {
			cert := ca.Issue(t, lab.CertOptions{IPs: []netip.Addr{p.ServerIPs[0]}})
			c = p.StartCoturn(t, lab.CoturnOptions{Port: peerTurnPort, TLSPort: peerTLSPort, Cert: cert,
				Users: map[string]string{turnUser: turnPass}})
		}}
	cred := []string{"--user", turnUser, "--password", turnPass}
	tlsArgs := func(p *lab.Pair, extra ...string) []string {
		return peerArgs(p, slices.Concat([]string{"--turn", "turns:" + c.TLSAddr().String()}, cred, extra)...)
	}
	udpArgs := func(p *lab.Pair) []string { return peerArgs(p, turnArgs(c, lab.Symmetric)...) }
	relayed := cellWant{a: lab.UDPBlocked, b: lab.Symmetric, outcome: "relayed", predicted: "relayed", matched: yes}
	noProblems := func(t *testing.T, r pairRun) {
		if j := r.a.json; j != nil && len(j.TURNProblems) != 0 {
			t.Errorf("A: turn_problems %q, want none", j.TURNProblems)
		}
	}
	job.runs = []peerJobRun{
		{name: "ca", run: func(p *lab.Pair, dir string) pairRun {
			return runTickets(p, bin, dir, tlsArgs(p, "--ca", ca.File), udpArgs(p), nil)
		}, check: func(t *testing.T, p *lab.Pair, r pairRun) {
			checkRun(t, p, r, relayed)
			noProblems(t, r)
		}},
		{name: "no-ca", run: func(p *lab.Pair, dir string) pairRun {
			return runTickets(p, bin, dir, tlsArgs(p, "-v"), udpArgs(p), nil)
		}, check: func(t *testing.T, p *lab.Pair, r pairRun) {
			checkRun(t, p, r, cellWant{a: lab.UDPBlocked, b: lab.Symmetric, outcome: "failed"})
			j := r.a.json
			if j == nil {
				return
			}
			// The cause is A's own: B only learns that A offered no relay.
			if !strings.Contains(j.Explanation, "unknown authority") {
				t.Errorf("A: explanation %q does not name the refused certificate", j.Explanation)
			}
			// -v says it as it happens, on stderr.
			if !strings.Contains(r.a.stderr, "TURN turns:"+c.TLSAddr().String()+": TLS certificate verification failed") {
				t.Errorf("A: -v did not log the refused certificate:\n%s", r.a.stderr)
			}
			if len(j.TURNProblems) != 1 || !strings.Contains(j.TURNProblems[0], "turns:"+c.TLSAddr().String()) ||
				!strings.Contains(j.TURNProblems[0], "--ca") {
				t.Errorf("A: turn_problems %q, want the turns: server named with its refused certificate and --ca", j.TURNProblems)
			}
			if j.Local.TURN {
				t.Error("A: local.turn true without a relay candidate")
			}
		}},
		{name: "insecure", run: func(p *lab.Pair, dir string) pairRun {
			return runTickets(p, bin, dir, tlsArgs(p, "--insecure"), udpArgs(p), nil)
		}, check: func(t *testing.T, p *lab.Pair, r pairRun) {
			checkRun(t, p, r, relayed)
			noProblems(t, r)
		}},
	}
	runPeerJobs(t, bin, []*peerJob{job})
}

func TestPeerUsage(t *testing.T) {
	bin := requirePeer(t, false)
	l := lab.New(t, lab.Options{Kind: lab.NoNAT}) // should it send anything, it stays in the lab
	for _, ticket := range []string{"not-a-ticket!", strings.Repeat("A", 4096)} {
		var stdout, stderr strings.Builder
		cmd := l.Command(context.Background(), l.Client, bin, "peer", ticket, "--json", "-s", l.ServerIPs[0].String())
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || stdout.Len() != 0 {
			t.Errorf("peer %.20s...: %v, stdout %q; want exit 2, no stdout", ticket, err, stdout.String())
			continue
		}
		if strings.TrimSpace(stderr.String()) == "" {
			t.Errorf("peer %.20s...: no error line on stderr", ticket)
		}
	}
	// One TURN address with and without TLS: bad usage, said at once.
	var stdout, stderr strings.Builder
	cmd := l.Command(context.Background(), l.Client, bin, "peer", "--json", "-s", l.ServerIPs[0].String(), "--user", "u", "--password", "p",
		"--turn", "turn:192.0.2.9:5349?transport=tcp", "--turn", "turns:192.0.2.9:5349")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "with and without TLS") {
		t.Errorf("turn: and turns: at one address: %v, stdout %q, stderr %q; want exit 2 and why", err, stdout.String(), stderr.String())
	}
}

// TestPeerPortMapHint: a port-restricted cone and a symmetric NAT cannot
// connect, and A's router runs miniupnpd: both sides' explanations name the port mapping A's
// router granted (UPnP IGD, NAT-PMP, PCP, asked while gathering and
// deleted at once), and B's JSON shows A's port_mapping from its ticket.
func TestPeerPortMapHint(t *testing.T) {
	bin := requirePeer(t, true)
	t.Parallel()
	// RouterAnswers: miniupnpd takes the STUN-mapped address as its WAN
	// address (the lab's is reserved) only when its STUN test sees that
	// nothing filters in front of it; a router that drops unsolicited UDP
	// to itself fails that test and maps nothing.
	job := &peerJob{name: "port-restricted/symmetric", opts: lab.PairOptions{A: lab.PortRestrictedCone, B: lab.Symmetric, RouterAnswers: true},
		// The pair's embedded Lab is site A's view: its router gets miniupnpd.
		setup: func(t *testing.T, p *lab.Pair) { p.Lab.StartMiniUPnPd(t) }}
	job.runs = []peerJobRun{{name: "ticket", run: func(p *lab.Pair, dir string) pairRun {
		return runTickets(p, bin, dir, peerArgs(p, "-v"), peerArgs(p), nil)
	}, check: func(t *testing.T, p *lab.Pair, r pairRun) {
		checkRun(t, p, r, cellWant{a: lab.PortRestrictedCone, b: lab.Symmetric, outcome: "failed", predicted: "failed", matched: yes})
		for _, x := range []struct {
			name string
			j    *peerJSON
		}{{"A", r.a.json}, {"B", r.b.json}} {
			if x.j == nil {
				continue
			}
			if !strings.Contains(x.j.Explanation, "or a port mapping (A's router offers UPnP") {
				t.Errorf("%s: explanation %q does not name A's router's UPnP", x.name, x.j.Explanation)
			}
		}
		if j := r.b.json; j != nil && (len(j.Remote.PortMapping) == 0 || j.Remote.PortMapping[0] != "upnp" || j.Local.PortMapping == nil || len(j.Local.PortMapping) != 0) {
			t.Errorf("B: remote port_mapping %v, local %v; want A's [upnp ...] and B's []", j.Remote.PortMapping, j.Local.PortMapping)
		}
	}}}
	runPeerJobs(t, bin, []*peerJob{job})
}

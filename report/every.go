package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
)

// The output of --every (docs/monitoring.md): per run, one line of text
// (the time, a summary, what changed) or one JSON object on one line
// (JSON Lines: the time, the run's number, what changed, then the fields
// of the command's --json document, or of RunErrorJSON for a run that
// failed). Which facts each command compares is decided here, beside the
// summaries that show them.

// EveryTimeLayout is a run's time in --every output: RFC 3339 in UTC with
// milliseconds, as runs may be a tenth of a second apart.
const EveryTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Statuses of a run, the "status" fact of every command.
const (
	RunOK       = "ok"        // the run answered
	RunNoAnswer = "no-answer" // no STUN server answered (exit code 3 of a single run)
	RunFailed   = "failed"    // any other failure (exit code 1 of a single run)
)

// EveryRun is one run of --every as it is printed.
type EveryRun struct {
	Seq int       // the run's number in the schedule (every.Tick.Seq)
	At  time.Time // when it started
	// Changes is what differs from the facts last known; nil for the
	// first run, which has nothing to be compared with.
	Changes []every.Change
	Summary string // the text line's summary
	Doc     any    // the JSON document: a command's --json document or a RunErrorJSON
}

// RunErrorJSON is the document of a run that failed under --every: the
// error a single run would print on stderr, and its exit code.
type RunErrorJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Error         string `json:"error"`
	ExitCode      int    `json:"exit_code"`
}

// NewRunErrorJSON is the document of a run that failed with err, which a
// single run would end with exit code code.
func NewRunErrorJSON(err error, code int) RunErrorJSON {
	return RunErrorJSON{SchemaVersion: SchemaVersion, Error: errText(err), ExitCode: code}
}

// everyMeta are the fields --every puts before the document's own.
type everyMeta struct {
	Time     string         `json:"time"`
	Sequence int            `json:"sequence"`
	Changed  []every.Change `json:"changed"`
}

// EveryText writes a run as one line, in one write, so that an interrupt
// never leaves half a line: the time, the summary and, when something
// changed, "changed: ..." with each change.
func EveryText(w io.Writer, r EveryRun) error {
	line := r.At.UTC().Format(EveryTimeLayout) + "  " + OneLine(r.Summary)
	if len(r.Changes) > 0 {
		line += "  changed: " + every.Describe(r.Changes)
	}
	_, err := io.WriteString(w, line+"\n")
	return err
}

// EveryJSON writes a run as one JSON object on one line, in one write:
// "time", "sequence" and "changed" (null on the first run, [] when nothing
// changed), then every field of r.Doc.
func EveryJSON(w io.Writer, r EveryRun) error {
	meta, err := marshalCompact(everyMeta{Time: r.At.UTC().Format(EveryTimeLayout), Sequence: r.Seq, Changed: r.Changes})
	if err != nil {
		return err
	}
	doc, err := marshalCompact(r.Doc)
	if err != nil {
		return err
	}
	if len(doc) < 2 || doc[0] != '{' {
		return fmt.Errorf("--every: the document is not a JSON object")
	}
	// Both are objects: the meta fields, then the document's, in one.
	line := append(meta[:len(meta)-1], ',')
	if len(doc) > 2 { // "{}" adds nothing but would leave a trailing comma
		line = append(line, doc[1:]...)
	} else {
		line[len(line)-1] = '}'
	}
	_, err = w.Write(append(line, '\n'))
	return err
}

// marshalCompact is json.Marshal without HTML escaping, like WriteJSON.
func marshalCompact(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// fact makes an every.Fact.
func fact(name, label, value string) every.Fact {
	return every.Fact{Name: name, Label: label, Value: value}
}

// StatusFact is a run's status: RunOK, RunNoAnswer or RunFailed.
func StatusFact(status string) every.Fact { return fact("status", "status", status) }

// triFact is a finding as a fact; unknown is "" (not compared).
func triFact(name, label string, b tri.Bool) every.Fact {
	if b == tri.Unknown {
		return fact(name, label, "")
	}
	return fact(name, label, b.String())
}

// publicIP is a public address's IP for a summary, or "-".
func publicIP(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return ipOf(a)
}

func ipOf(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.Addr().Unmap().String()
}

// WhoAmIFacts are what whoami --every compares: the public IP, NAT or
// not, whether the servers agreed, and each server's reachability. A
// server whoami stopped waiting for (skipped) is not compared: it may
// have answered later.
func WhoAmIFacts(w *probe.WhoAmI) []every.Fact {
	agreement := "agree"
	if w.Differ > 0 {
		agreement = "disagree"
	}
	fs := []every.Fact{StatusFact(RunOK), fact("public_ip", "public IP", ipOf(w.Public)),
		fact("nat", "NAT", yesNo(w.NAT)), fact("servers_agree", "servers", agreement)}
	for _, s := range w.Servers {
		fs = append(fs, serverFact(s.Server.Input, reachability(s.Status)))
	}
	return fs
}

func yesNo(b bool) string { return tri.Of(b).String() }

// reachability is up, down or "" (not known) for a server's whoami status.
func reachability(s probe.Status) string {
	switch s {
	case probe.StatusAnswered:
		return "up"
	case probe.StatusSkipped:
		return ""
	}
	return "down"
}

func serverFact(name, state string) every.Fact {
	return fact("server:"+name, "server "+name, state)
}

// WhoAmISummary is whoami's line under --every: the public IP, NAT, the
// servers' agreement and the time, e.g.
// "203.0.113.2  behind NAT  2 servers agree  105 ms".
func WhoAmISummary(w *probe.WhoAmI) string {
	nat := "no NAT"
	if w.NAT {
		nat = "behind NAT"
	}
	agreement := "1 server"
	switch {
	case w.Differ > 0:
		agreement = fmt.Sprintf("servers DISAGREE (%d saw it, %d another address)", w.Agreed, w.Differ)
	case w.Agreed >= 2:
		agreement = fmt.Sprintf("%d servers agree", w.Agreed)
	}
	return strings.Join([]string{w.Public.Addr().Unmap().String(), nat, agreement, FormatDuration(w.Elapsed)}, "  ")
}

// TypeFacts are what type --every compares: the type, mapping, filtering
// and public IP.
func TypeFacts(r *probe.TypeResult) []every.Fact {
	v := r.Verdict
	return []every.Fact{StatusFact(RunOK), fact("type", "type", string(v.Type)), fact("mapping", "mapping", string(v.Mapping)),
		fact("filtering", "filtering", string(v.Filtering)), fact("public_ip", "public IP", ipOf(v.Public))}
}

// TypeSummary is type's line under --every: the verdict (with --runs'
// agreement), the public address and the time.
func TypeSummary(r *probe.TypeResult, runs *diagnose.Runs) string {
	verdict := VerdictLine(r.Verdict)
	if runs != nil {
		verdict += ", " + diagnose.AgreementNote(runs)
	}
	return strings.Join([]string{verdict, "public " + publicIP(r.Public), FormatDuration(r.Duration)}, "  ")
}

// FullFacts are what report --every compares: every check's status, the
// NAT type's facts, port mapping per protocol and double NAT, IPv6, the
// TCP mapping, each STUN server's reachability and each TURN relay's
// verdict.
func FullFacts(in FullInput) []every.Fact {
	r := in.Result
	fs := []every.Fact{StatusFact(RunOK)}
	for _, c := range r.Checks {
		fs = append(fs, fact("check:"+string(c.Name), string(c.Name)+" check", string(c.Status)))
	}
	if r.Type != nil && !failed(r, diagnose.CheckType) {
		fs = append(fs, TypeFacts(r.Type)[1:]...)
	}
	if r.Portmap != nil {
		for _, p := range r.Portmap.Results {
			fs = append(fs, triFact("port_mapping:"+string(p.Protocol), p.Protocol.Name(), p.Supported))
		}
		fs = append(fs, triFact("double_nat", "double NAT", doubleNATJSON(portmapInput(r)).Detected))
	}
	if r.IPv6 != nil {
		fs = append(fs, fact("ipv6", "IPv6", string(r.IPv6.STUN)), fact("public_ipv6", "public IPv6", ipOf(r.IPv6.Public)))
	}
	if r.TCP != nil {
		fs = append(fs, fact("tcp_mapping", "TCP mapping", string(r.TCP.Mapping)))
	}
	for _, s := range r.Servers {
		state := "down"
		if s.Replied {
			state = "up"
		}
		fs = append(fs, serverFact(s.Server.Input, state))
	}
	for _, t := range r.Turn {
		fs = append(fs, fact("turn:"+t.URI.Raw, "TURN "+t.URI.Raw, string(t.Verdict)))
	}
	return fs
}

// FullSummary is report's line under --every: the headline, the public
// address, then one short part per check that ran, e.g.
// "port-restricted-cone (...)  public 203.0.113.2  servers 1/1 up
// port mapping upnp yes, nat-pmp yes, pcp yes  ipv6 works  tcp
// endpoint-independent  23.10 s".
func FullSummary(in FullInput) string {
	r := in.Result
	parts := []string{headline(r)}
	if r.Type != nil && !failed(r, diagnose.CheckType) {
		parts = append(parts, "public "+publicIP(r.Type.Public))
	}
	if r.Servers != nil {
		up := 0
		for _, s := range r.Servers {
			if s.Replied {
				up++
			}
		}
		parts = append(parts, fmt.Sprintf("servers %d/%d up", up, len(r.Servers)))
	}
	if r.Portmap != nil {
		var ps []string
		for _, p := range r.Portmap.Results {
			ps = append(ps, string(p.Protocol)+" "+p.Supported.String())
		}
		pm := "port mapping " + strings.Join(ps, ", ")
		if d := doubleNATJSON(portmapInput(r)).Detected; d == tri.Yes {
			pm += ", double NAT"
		}
		parts = append(parts, pm)
	}
	if r.IPv6 != nil {
		parts = append(parts, "ipv6 "+string(r.IPv6.STUN))
	}
	if r.TCP != nil {
		parts = append(parts, "tcp "+string(r.TCP.Mapping))
	}
	for _, t := range r.Turn {
		parts = append(parts, "turn "+string(t.Verdict))
	}
	return strings.Join(append(parts, FormatDuration(r.Elapsed)), "  ")
}

// EveryPrinter prints the runs of --every, each compared with the facts
// last known, as text lines or JSON Lines.
type EveryPrinter struct {
	Out  io.Writer
	JSON bool
	// Runs counts the runs printed, Changed those with a change.
	Runs, Changed int
	tracker       every.Tracker
}

// Print compares a run's facts with the last known ones and prints the run
// (summary for text, doc for JSON) with what changed.
func (p *EveryPrinter) Print(seq int, at time.Time, facts []every.Fact, summary string, doc any) error {
	changes, compared := p.tracker.Observe(facts)
	if !compared {
		changes = nil
	}
	p.Runs++
	if len(changes) > 0 {
		p.Changed++
	}
	r := EveryRun{Seq: seq, At: at, Changes: changes, Summary: summary, Doc: doc}
	if p.JSON {
		return EveryJSON(p.Out, r)
	}
	return EveryText(p.Out, r)
}

// FailedRun is what --every prints for a run that failed with err, which
// would have ended a single run with exit code code (3: no server
// answered, else 1): its facts (the status only), its summary and its
// JSON document.
func FailedRun(err error, code int) (facts []every.Fact, summary string, doc RunErrorJSON) {
	status := RunFailed
	if code == 3 {
		status = RunNoAnswer
	}
	return []every.Fact{StatusFact(status)}, "error: " + errText(err), NewRunErrorJSON(err, code)
}

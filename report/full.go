package report

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/natcheck/natcheck/probe/turncheck"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// FullInput is what `natcheck report` renders.
type FullInput struct {
	Result  *diagnose.Result
	Servers []stunclient.Server // the servers asked, in order
	Version string              // natcheck's version, for the ticket
	At      time.Time           // when the report was made
}

// FullJSON is the JSON form of `natcheck report`. `natcheck type --json`'s
// fields appear unchanged at its top level; every other check has its own
// object, null when the check did not run or failed (see `checks`).
type FullJSON struct {
	TypeJSON
	Checks          []CheckJSON       `json:"checks"`
	PortMapping     *PortmapJSON      `json:"port_mapping"`
	IPv6            *IPv6JSON         `json:"ipv6"`
	TCP             *TCPMappingJSON   `json:"tcp"`
	Lifetime        *LifetimeJSON     `json:"binding_lifetime"`
	ServerChecks    []ServerCheckJSON `json:"server_checks"`
	Turn            []TurnServerJSON  `json:"turn,omitempty"` // report --turn; absent without it
	Local           LocalJSON         `json:"local"`
	NatcheckVersion string            `json:"natcheck_version"`
	CreatedAt       string            `json:"created_at"`
	ReportElapsedMs float64           `json:"report_elapsed_ms"`
}

// CheckJSON is one check's outcome.
type CheckJSON struct {
	Name      diagnose.CheckName `json:"name"`
	Status    diagnose.Status    `json:"status"`
	Note      string             `json:"note,omitempty"`
	ElapsedMs float64            `json:"elapsed_ms"`
}

// LocalJSON is the host's own picture.
type LocalJSON struct {
	Interfaces    []InterfaceJSON `json:"interfaces"`
	Gateway       string          `json:"gateway,omitempty"`
	GatewayIface  string          `json:"gateway_interface,omitempty"`
	GatewayError  string          `json:"gateway_error,omitempty"`
	InternetIface string          `json:"internet_interface,omitempty"`
}

// InterfaceJSON is one interface address.
type InterfaceJSON struct {
	Name   string `json:"name"`
	IP     string `json:"ip"`
	Tunnel bool   `json:"tunnel"`
}

// NewFullJSON converts a report run to its JSON form.
func NewFullJSON(in FullInput) FullJSON {
	r := in.Result
	out := FullJSON{
		TypeJSON:        typeJSONOrUnknown(r),
		Checks:          []CheckJSON{},
		ServerChecks:    []ServerCheckJSON{},
		Local:           localJSON(r.Local),
		NatcheckVersion: in.Version,
		CreatedAt:       in.At.UTC().Format(time.RFC3339),
		ReportElapsedMs: Millis(r.Elapsed),
	}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, CheckJSON{Name: c.Name, Status: c.Status, Note: OneLine(c.Note), ElapsedMs: Millis(c.Elapsed)})
	}
	if r.Portmap != nil {
		pm := NewPortmapJSON(portmapInput(r))
		out.PortMapping = &pm
	}
	if r.IPv6 != nil {
		j := NewIPv6JSON(r.IPv6)
		out.IPv6 = &j
	}
	if r.TCP != nil {
		j := NewTCPMappingJSON(r.TCP)
		out.TCP = &j
	}
	if r.Lifetime != nil {
		j := NewLifetimeJSON(r.Lifetime)
		out.Lifetime = &j
	}
	if len(r.Turn) > 0 {
		out.Turn = TurnServersJSON(r.Turn)
	}
	if r.Servers != nil {
		out.ServerChecks = NewServersJSON(stunclient.IPv4, in.Servers, r.Servers).Servers
	}
	return out
}

// typeJSONOrUnknown is type's JSON, or an honest "unknown" when the
// behaviour tests produced nothing at all.
func typeJSONOrUnknown(r *diagnose.Result) TypeJSON {
	j := typeJSONOf(r)
	j.AddRuns(r.TypeRuns)
	return j
}

func typeJSONOf(r *diagnose.Result) TypeJSON {
	if r.Type != nil {
		return NewTypeJSON(stunclient.IPv4, r.Type)
	}
	why := "the NAT type check did not run"
	if c, ok := r.Check(diagnose.CheckType); ok && c.Note != "" {
		why = "the NAT type check failed: " + OneLine(c.Note)
	}
	return TypeJSON{
		SchemaVersion: SchemaVersion, Family: "ipv4", Type: nat.TypeUnknown,
		Mapping: nat.MappingUnknown, Filtering: nat.FilteringUnknown, RFC5780: nat.RFC5780Absent,
		Servers: []string{}, Evidence: []string{why}, Hops: []HopJSON{}, Tests: []TestJSON{},
		ServerViews: []ServerViewJSON{}, ExcludedServers: []string{},
	}
}

// errNoSTUNMapped is the port-mapping section's STUN error in a report:
// the NAT type check, not a STUN question of its own, gives the public
// address.
var errNoSTUNMapped = errors.New("no STUN-mapped address (see the NAT type check)")

func portmapInput(r *diagnose.Result) PortmapInput {
	in := PortmapInput{Report: r.Portmap, Elapsed: r.Portmap.Elapsed}
	if r.Type != nil && r.Type.Public.IsValid() {
		in.STUNMapped = r.Type.Public.Addr()
	} else {
		in.STUNErr = errNoSTUNMapped
	}
	return in
}

func localJSON(l diagnose.Local) LocalJSON {
	out := LocalJSON{Interfaces: []InterfaceJSON{}, GatewayIface: l.Gateway.Iface, GatewayError: errText(l.GatewayErr), InternetIface: l.InternetIface}
	if l.Gateway.Addr.IsValid() {
		out.Gateway = l.Gateway.Addr.String()
	}
	for _, h := range l.Interfaces {
		out.Interfaces = append(out.Interfaces, InterfaceJSON{Name: h.Iface, IP: h.Addr.String(), Tunnel: h.Tunnel})
	}
	return out
}

// section is one part of the report: a title, a one-line summary for the
// overview, and the detailed text.
type section struct {
	title   string
	summary string
	body    string
}

// sections renders each check with its own text renderer. A check that
// failed or timed out is summed up by why; its partial findings, if any,
// still follow in the details.
func sections(in FullInput, verbose bool) []section {
	r := in.Result
	var out []section
	add := func(title string, check diagnose.CheckName, ran bool, render func(io.Writer) error, summary func() string) {
		s := section{title: title}
		var b bytes.Buffer
		if ran {
			if err := render(&b); err != nil {
				fmt.Fprintf(&b, "(rendering failed: %v)\n", err)
			}
		}
		first, _, _ := strings.Cut(b.String(), "\n")
		switch {
		case !ran || failed(r, check):
			s.summary = notRun(r, check)
			s.body = s.summary + "\n" + b.String()
		case summary != nil:
			s.summary, s.body = summary(), b.String()
		default:
			s.summary, s.body = first, b.String()
		}
		out = append(out, s)
	}
	add("NAT type (IPv4)", diagnose.CheckType, r.Type != nil, func(w io.Writer) error { return TypeRunsText(w, r.Type, r.TypeRuns, verbose) }, nil)
	add("Port mapping (UPnP, NAT-PMP, PCP)", diagnose.CheckPortmap, r.Portmap != nil, func(w io.Writer) error {
		return PortmapText(w, portmapInput(r), verbose)
	}, nil)
	add("IPv6", diagnose.CheckIPv6, r.IPv6 != nil, func(w io.Writer) error { return IPv6Text(w, r.IPv6, true) }, nil)
	add("STUN over TCP", diagnose.CheckTCP, r.TCP != nil, func(w io.Writer) error { return TCPMappingText(w, r.TCP, verbose) }, nil)
	add("Binding lifetime", diagnose.CheckLifetime, r.Lifetime != nil, func(w io.Writer) error { return LifetimeText(w, r.Lifetime, verbose) }, nil)
	add("STUN servers", diagnose.CheckServers, r.Servers != nil, func(w io.Writer) error { return ServersText(w, in.Servers, r.Servers) },
		func() string { c, _ := r.Check(diagnose.CheckServers); return OneLine(c.Note) })
	if len(r.Turn) > 0 {
		out = append(out, turnSection(r.Turn, verbose))
	}
	add("This host", diagnose.CheckLocal, true, func(w io.Writer) error { return localText(w, r.Local) }, nil)
	return out
}

// turnSection is report --turn's section: one verdict per relay.
func turnSection(rs []turncheck.Result, verbose bool) section {
	var b bytes.Buffer
	if err := TurnText(&b, rs, verbose); err != nil {
		fmt.Fprintf(&b, "(rendering failed: %v)\n", err)
	}
	works := 0
	for _, r := range rs {
		if r.Verdict == turncheck.Works {
			works++
		}
	}
	summary, _, _ := strings.Cut(b.String(), "\n")
	if len(rs) > 1 {
		summary = fmt.Sprintf("%d of %d relays work", works, len(rs))
	}
	return section{title: "TURN relay", summary: summary, body: b.String()}
}

// failed reports whether the named check failed or ran out of time.
func failed(r *diagnose.Result, name diagnose.CheckName) bool {
	c, ok := r.Check(name)
	return ok && (c.Status == diagnose.StatusFailed || c.Status == diagnose.StatusTimeout)
}

// notRun says why a check has no findings.
func notRun(r *diagnose.Result, name diagnose.CheckName) string {
	c, ok := r.Check(name)
	if !ok {
		return "not run"
	}
	switch c.Status {
	case diagnose.StatusSkipped:
		return OneLine(c.Note)
	case diagnose.StatusTimeout:
		return "did not finish within --timeout"
	default:
		return "failed: " + OneLine(c.Note)
	}
}

func localText(w io.Writer, l diagnose.Local) error {
	route := "no default route"
	if l.Gateway.Addr.IsValid() {
		route = fmt.Sprintf("default route via %s dev %s", l.Gateway.Addr, l.Gateway.Iface)
	}
	if l.InternetIface != "" {
		route += "; the STUN servers are reached through " + l.InternetIface
	}
	if _, err := fmt.Fprintln(w, route); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range l.Interfaces {
		note := ""
		if h.Tunnel {
			note = "tunnel"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.Iface, h.Addr, note)
	}
	return tw.Flush()
}

// FullText writes the report for a terminal: the NAT verdict first, a short
// overview, then every section and the checks' outcomes.
func FullText(out io.Writer, in FullInput, verbose bool) error {
	ss := sections(in, verbose)
	var b strings.Builder
	b.WriteString(headline(in.Result) + "\n\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\n", s.title, s.summary)
	}
	tw.Flush()
	for _, s := range ss {
		fmt.Fprintf(&b, "\n== %s ==\n%s", s.title, s.body)
	}
	b.WriteString("\n== Checks ==\n")
	writeChecks(&b, in.Result.Checks)
	fmt.Fprintf(&b, "\nnatcheck %s, %s, %s\n", in.Version, in.At.UTC().Format(time.RFC3339), FormatDuration(in.Result.Elapsed))
	_, err := io.WriteString(out, b.String())
	return err
}

// headline is the report's first line: the NAT verdict, or why none.
func headline(r *diagnose.Result) string {
	if r.Type != nil && !failed(r, diagnose.CheckType) {
		if r.TypeRuns != nil {
			return VerdictLine(r.Type.Verdict) + ", " + diagnose.AgreementNote(r.TypeRuns)
		}
		return VerdictLine(r.Type.Verdict)
	}
	return "unknown: " + notRun(r, diagnose.CheckType)
}

func writeChecks(w io.Writer, cs []diagnose.Check) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, c.Status, checkTime(c), OneLine(c.Note))
	}
	tw.Flush()
}

// FullMarkdown writes the report ready to paste into a ticket: the verdict,
// an overview table, then each section's details in a code block.
func FullMarkdown(out io.Writer, in FullInput, verbose bool) error {
	r := in.Result
	ss := sections(in, verbose)
	var b strings.Builder
	b.WriteString("# natcheck report\n\n")
	fmt.Fprintf(&b, "**%s**\n\n", mdEscape(headline(r)))
	if r.Type != nil && r.Type.Outlook != "" {
		fmt.Fprintf(&b, "%s\n\n", mdEscape(r.Type.Outlook))
	}
	b.WriteString("| check | result |\n|---|---|\n")
	if r.Type != nil {
		fmt.Fprintf(&b, "| public address | %s |\n", mdCell(AddrString(r.Type.Public)))
	}
	for _, s := range ss {
		fmt.Fprintf(&b, "| %s | %s |\n", mdCell(s.title), mdCell(s.summary))
	}
	for _, s := range ss {
		fmt.Fprintf(&b, "\n## %s\n\n```\n%s```\n", s.title, s.body)
	}
	b.WriteString("\n## Checks\n\n| check | status | time | note |\n|---|---|---|---|\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Status, checkTime(c), mdCell(OneLine(c.Note)))
	}
	fmt.Fprintf(&b, "\n_natcheck %s, %s, took %s_\n", mdEscape(in.Version), in.At.UTC().Format(time.RFC3339), FormatDuration(r.Elapsed))
	_, err := io.WriteString(out, b.String())
	return err
}

// mdCell makes text safe inside a Markdown table cell.
func mdCell(s string) string {
	return strings.ReplaceAll(mdEscape(s), "\n", " ")
}

// mdEscape keeps table pipes and emphasis characters literal.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "`", "'").Replace(s)
}

// checkTime is a check's duration, or "-" for one that did not run.
func checkTime(c diagnose.Check) string {
	if c.Elapsed <= 0 {
		return "-"
	}
	return FormatDuration(c.Elapsed)
}

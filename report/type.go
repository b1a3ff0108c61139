package report

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// TypeJSON is the JSON form of `natcheck type`. Field names are a public
// contract (docs/json.md). Tri-state findings are null when not tested.
type TypeJSON struct {
	SchemaVersion         int           `json:"schema_version"`
	Family                string        `json:"family"`
	Type                  nat.NATType   `json:"type"`
	NAT                   tri.Bool      `json:"nat"`
	Mapping               nat.Mapping   `json:"mapping"`
	Filtering             nat.Filtering `json:"filtering"`
	PublicIP              string        `json:"public_ip"`
	PublicPort            int           `json:"public_port"`
	LocalIP               string        `json:"local_ip"`
	LocalPort             int           `json:"local_port"`
	PortPreservation      tri.Bool      `json:"port_preservation"`
	Hairpinning           tri.Bool      `json:"hairpinning"`
	CGNAT                 tri.Bool      `json:"cgnat"`
	ALG                   tri.Bool      `json:"alg"`
	MappingVariesByDestIP tri.Bool      `json:"mapping_varies_by_dest_ip"`
	RFC5780               nat.RFC5780   `json:"rfc5780"`
	Server                string        `json:"server_address"`
	Servers               []string      `json:"server_addresses"`
	Outlook               string        `json:"p2p_outlook"`
	Evidence              []string      `json:"evidence"`
	ElapsedMs             float64       `json:"elapsed_ms"`
	Hops                  []HopJSON     `json:"hops"`
	ServerTTL             int           `json:"server_ttl"`
	Tests                 []TestJSON    `json:"tests"`
	// ServerViews is what each server told the mapping socket;
	// ExcludedServers the ones whose mapping evidence was not used.
	ServerViews     []ServerViewJSON `json:"server_views"`
	ExcludedServers []string         `json:"excluded_servers"`
	// LocalSockets are the local sockets the run opened (omitted when
	// none is known).
	LocalSockets []SocketJSON `json:"local_sockets,omitempty"`
	// Runs and Agreement appear with --runs only.
	Runs      []RunJSON      `json:"runs,omitempty"`
	Agreement *AgreementJSON `json:"agreement,omitempty"`
}

// ServerViewJSON is one server's answers to the mapping socket.
type ServerViewJSON struct {
	Server    string   `json:"server"`
	Saw       []string `json:"saw"`
	Answers   int      `json:"answers"`
	Confirmed bool     `json:"confirmed"`
	Excluded  bool     `json:"excluded"`
	Reason    string   `json:"excluded_reason,omitempty"`
}

// SocketJSON is one local socket of a run and what it was for.
type SocketJSON struct {
	Use   string `json:"use"`
	Local string `json:"local_address"`
}

// RunJSON is one run of --runs.
type RunJSON struct {
	Run       int           `json:"run"`
	Type      nat.NATType   `json:"type"`
	Mapping   nat.Mapping   `json:"mapping"`
	Filtering nat.Filtering `json:"filtering"`
	PublicIP  string        `json:"public_ip"`
	Agrees    bool          `json:"agrees"`
	ElapsedMs float64       `json:"elapsed_ms"`
	Error     string        `json:"error,omitempty"`
}

// AgreementJSON is how far the runs of --runs agreed.
type AgreementJSON struct {
	Runs     int      `json:"runs"`
	Agreeing int      `json:"agreeing"`
	Majority bool     `json:"majority"`
	Differed []string `json:"differed"`
}

// AddRuns adds --runs' record: every run and the agreement.
func (j *TypeJSON) AddRuns(r *diagnose.Runs) {
	if r == nil {
		return
	}
	j.Runs = []RunJSON{}
	for i, run := range r.Runs {
		rj := RunJSON{Run: i + 1, Type: nat.TypeUnknown, Mapping: nat.MappingUnknown, Filtering: nat.FilteringUnknown,
			ElapsedMs: Millis(run.Elapsed), Error: errText(run.Err)}
		if v, ok := run.Verdict(); ok {
			rj.Type, rj.Mapping, rj.Filtering = v.Type, v.Mapping, v.Filtering
			rj.Agrees = r.HasMajority() && v == r.Majority
		}
		if run.Result != nil && run.Result.Public.IsValid() {
			rj.PublicIP = run.Result.Public.Addr().Unmap().String()
		}
		j.Runs = append(j.Runs, rj)
	}
	j.Agreement = &AgreementJSON{Runs: len(r.Runs), Agreeing: r.Agreeing, Majority: r.HasMajority(),
		Differed: append([]string{}, r.Differed...)}
}

// HopJSON is one router seen by the TTL-limited probe.
type HopJSON struct {
	TTL     int    `json:"ttl"`
	Address string `json:"ip"`
}

// TestJSON is the raw observation of one test.
type TestJSON struct {
	Name         nat.TestName `json:"name"`
	Local        string       `json:"local_address,omitempty"`
	To           string       `json:"to_address,omitempty"`
	Change       string       `json:"change,omitempty"`
	Expect       string       `json:"expected_from_address,omitempty"`
	Replied      bool         `json:"replied"`
	From         string       `json:"from_address,omitempty"`
	RTTMs        *float64     `json:"rtt_ms"`
	Attempts     int          `json:"attempts"`
	XORMapped    string       `json:"xor_mapped_address,omitempty"`
	Mapped       string       `json:"mapped_address,omitempty"`
	OtherAddress string       `json:"other_address,omitempty"`
	ErrorCode    int          `json:"error_code,omitempty"`
	Error        string       `json:"error,omitempty"`
	Witnessed    int          `json:"witnessed,omitempty"`
}

// NewTypeJSON converts a behaviour run to its JSON form.
func NewTypeJSON(f stunclient.Family, r *probe.TypeResult) TypeJSON {
	v := r.Verdict
	out := TypeJSON{
		SchemaVersion: SchemaVersion, Family: strings.ToLower(f.String()),
		Type: v.Type, NAT: v.NAT, Mapping: v.Mapping, Filtering: v.Filtering,
		PortPreservation: v.PortPreservation, Hairpinning: v.Hairpinning, CGNAT: v.CGNAT, ALG: v.ALG,
		MappingVariesByDestIP: v.MappingVariesByDestIP, RFC5780: v.RFC5780,
		Server: addrOrEmpty(r.Primary), Servers: []string{}, Outlook: v.Outlook,
		Evidence: append([]string{}, v.Evidence...), ElapsedMs: Millis(r.Duration),
		Hops: []HopJSON{}, Tests: []TestJSON{}, ServerTTL: r.ReachedTTL,
	}
	if v.Public.IsValid() {
		out.PublicIP, out.PublicPort = v.Public.Addr().Unmap().String(), int(v.Public.Port())
	}
	if v.Local.IsValid() {
		out.LocalIP, out.LocalPort = v.Local.Addr().Unmap().String(), int(v.Local.Port())
	}
	for _, s := range r.Servers {
		out.Servers = append(out.Servers, s.String())
	}
	for _, h := range r.Hops {
		out.Hops = append(out.Hops, HopJSON{TTL: h.TTL, Address: h.From.Unmap().String()})
	}
	for _, t := range r.Tests {
		out.Tests = append(out.Tests, testJSON(t))
	}
	out.ServerViews, out.ExcludedServers = []ServerViewJSON{}, []string{}
	for _, sv := range v.Servers {
		j := ServerViewJSON{Server: addrOrEmpty(sv.Server), Saw: []string{}, Answers: sv.Answers, Confirmed: sv.Confirmed,
			Excluded: sv.Excluded != "", Reason: sv.Excluded}
		for _, a := range sv.Saw {
			j.Saw = append(j.Saw, addrOrEmpty(a))
		}
		out.ServerViews = append(out.ServerViews, j)
		if j.Excluded {
			out.ExcludedServers = append(out.ExcludedServers, j.Server)
		}
	}
	for _, s := range r.Sockets {
		out.LocalSockets = append(out.LocalSockets, SocketJSON{Use: s.Use, Local: addrOrEmpty(s.Local)})
	}
	return out
}

func testJSON(t nat.TestResult) TestJSON {
	j := TestJSON{Name: t.Name, Local: addrOrEmpty(t.Local), To: addrOrEmpty(t.To), Change: changeName(t.Change),
		Expect: addrOrEmpty(t.Expect), Replied: t.Replied, From: addrOrEmpty(t.From), Attempts: t.Attempts,
		XORMapped: addrOrEmpty(t.XORMapped), Mapped: addrOrEmpty(t.Mapped), OtherAddress: addrOrEmpty(t.OtherAddress),
		ErrorCode: t.ErrorCode, Error: errText(t.Err), Witnessed: t.Witnessed}
	if t.Replied {
		j.RTTMs = optMillis(t.RTT)
	}
	return j
}

func changeName(c nat.ChangeFlags) string {
	switch c {
	case 0:
		return ""
	case nat.ChangeIP | nat.ChangePort:
		return "ip+port"
	case nat.ChangePort:
		return "port"
	case nat.ChangeIP:
		return "ip"
	}
	return fmt.Sprintf("0x%x", uint32(c))
}

// addrOrEmpty prints an address with IPv4-mapped IPv6 shown as IPv4.
func addrOrEmpty(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
}

// TypeText writes the verdict in one line first, then the addresses, each
// finding with its evidence, and the peer-to-peer outlook. Verbose adds
// every test's raw observation.
func TypeText(out io.Writer, r *probe.TypeResult, verbose bool) error {
	return TypeRunsText(out, r, nil, verbose)
}

// TypeRunsText is TypeText for --runs: the first line adds the agreement
// ("..., 5 of 5 runs"); when the runs did not all agree (and always with
// verbose) each run's verdict follows, with what differed.
func TypeRunsText(out io.Writer, r *probe.TypeResult, runs *diagnose.Runs, verbose bool) error {
	v := r.Verdict
	first := VerdictLine(v)
	if runs != nil {
		first += ", " + diagnose.AgreementNote(runs)
	}
	if _, err := fmt.Fprintln(out, first); err != nil {
		return err
	}
	if runs != nil && (verbose || len(runs.Differed) > 0) {
		runsText(out, runs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "public address\t%s\n", AddrString(v.Public))
	fmt.Fprintf(tw, "local address\t%s\n", AddrString(v.Local))
	fmt.Fprintf(tw, "behind NAT\t%s\n", triState(v.NAT))
	fmt.Fprintf(tw, "mapping\t%s\n", v.Mapping)
	fmt.Fprintf(tw, "filtering\t%s\n", v.Filtering)
	fmt.Fprintf(tw, "port preservation\t%s\n", triState(v.PortPreservation))
	hairpin := triState(v.Hairpinning)
	if v.NAT == tri.No && v.Hairpinning == tri.Unknown {
		// Hairpinning is a NAT's property: the test may have run (and its
		// datagram come straight back), but without NAT it tells nothing.
		hairpin = "does not apply (no NAT)"
	}
	fmt.Fprintf(tw, "hairpinning\t%s\n", hairpin)
	fmt.Fprintf(tw, "carrier-grade NAT\t%s\n", triState(v.CGNAT))
	fmt.Fprintf(tw, "ALG\t%s\n", triState(v.ALG))
	fmt.Fprintf(tw, "server\t%s (RFC 5780 support: %s)\n", AddrString(r.Primary), v.RFC5780)
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(r.Duration))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "evidence:")
	for _, e := range v.Evidence {
		fmt.Fprintf(out, "  - %s\n", e)
	}
	if len(r.Hops) > 0 {
		var hs []string
		for _, h := range r.Hops {
			hs = append(hs, fmt.Sprintf("%d:%s", h.TTL, h.From.Unmap()))
		}
		fmt.Fprintf(out, "  - path (TTL:router): %s\n", strings.Join(hs, " "))
	}
	if _, err := fmt.Fprintf(out, "P2P: %s\n", v.Outlook); err != nil || !verbose {
		return err
	}
	if len(r.Sockets) > 0 {
		fmt.Fprintln(out, "local sockets:")
		for _, s := range r.Sockets {
			fmt.Fprintf(out, "  %-9s  %s\n", s.Use, AddrString(s.Local))
		}
	}
	fmt.Fprintln(out, "tests:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, t := range r.Tests {
		fmt.Fprintf(tw, "  %s\t%s\n", t.Name, testLine(t))
	}
	return tw.Flush()
}

// VerdictLine is the one-line answer: the classic name, then the RFC 4787
// behaviours it rests on.
func VerdictLine(v nat.Verdict) string {
	switch v.Type {
	case nat.TypeUDPBlocked:
		return "udp-blocked (UDP gets no answer; STUN over TCP does)"
	case nat.TypeOpenInternet, nat.TypeSymmetricFirewall:
		return fmt.Sprintf("%s (no NAT; filtering %s)", v.Type, v.Filtering)
	}
	return fmt.Sprintf("%s (mapping %s, filtering %s)", v.Type, v.Mapping, v.Filtering)
}

// triState is a finding in text: yes, no, or "not tested / unknown".
func triState(b tri.Bool) string {
	if b == tri.Unknown {
		return "not tested / unknown"
	}
	return b.String()
}

func testLine(t nat.TestResult) string {
	parts := []string{"to " + AddrString(t.To)}
	if c := changeName(t.Change); c != "" {
		parts = append(parts, "change "+c)
	}
	if !t.Replied {
		parts = append(parts, fmt.Sprintf("no reply (%d sent)", t.Attempts))
	} else {
		parts = append(parts, "reply from "+AddrString(t.From))
		if t.RTT > 0 {
			parts = append(parts, "rtt "+FormatDuration(t.RTT))
		}
		if t.XORMapped.IsValid() {
			parts = append(parts, "saw "+AddrString(t.XORMapped))
		}
	}
	if t.Err != nil {
		parts = append(parts, "("+errText(t.Err)+")")
	}
	return strings.Join(parts, "  ")
}

// TypeWithLifetimeJSON is `natcheck type --lifetime --json`: type's fields,
// plus the lifetime measurement (null when it failed; see
// binding_lifetime_error).
type TypeWithLifetimeJSON struct {
	TypeJSON
	Lifetime      *LifetimeJSON `json:"binding_lifetime"`
	LifetimeError string        `json:"binding_lifetime_error,omitempty"`
}

// NewTypeWithLifetimeJSON adds a lifetime measurement to type's JSON.
func NewTypeWithLifetimeJSON(f stunclient.Family, r *probe.TypeResult, l *lifetime.Result, err error) TypeWithLifetimeJSON {
	out := TypeWithLifetimeJSON{TypeJSON: NewTypeJSON(f, r)}
	if l != nil {
		j := NewLifetimeJSON(l)
		out.Lifetime = &j
	}
	if err != nil {
		out.LifetimeError = errText(err)
	}
	return out
}

// runsText lists every run of --runs and what differed between them.
func runsText(out io.Writer, runs *diagnose.Runs) {
	if len(runs.Differed) > 0 {
		fmt.Fprintf(out, "runs differed in: %s\n", strings.Join(runs.Differed, ", "))
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for i, run := range runs.Runs {
		v, ok := run.Verdict()
		switch {
		case !ok:
			why := "no verdict"
			if run.Err != nil {
				why = run.Err.Error()
			}
			fmt.Fprintf(tw, "  run %d\tfailed: %s\t\t%s\n", i+1, why, FormatDuration(run.Elapsed))
		default:
			mark := ""
			if runs.HasMajority() && v != runs.Majority {
				mark = "  (differs)"
			}
			fmt.Fprintf(tw, "  run %d\t%s\tpublic %s\t%s%s\n", i+1,
				VerdictLine(nat.Verdict{Type: v.Type, Mapping: v.Mapping, Filtering: v.Filtering}),
				AddrString(run.Result.Public), FormatDuration(run.Elapsed), mark)
		}
	}
	tw.Flush()
}

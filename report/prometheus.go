package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/probe/turncheck"
)

// --format prometheus writes the Prometheus text exposition format as
// node_exporter's textfile collector reads it (docs/monitoring.md): every
// metric a gauge named natcheck_*, with HELP and TYPE lines, no
// timestamps. Labels have few values: the command, the address family, an
// enum's value, a check's or a configured server's name. The public
// address, whose values would be unbounded across a fleet's history, is
// only the label of one info metric (one series per host at a time).
// Enums are state sets: one series per possible value, 1 for the value
// found and 0 for the others, so that a series never appears or vanishes
// when the value changes. A finding that could not be decided is left
// out rather than given a value.

// metricHelp is every metric's HELP text: one table, so that the same
// metric has the same help in every file a host publishes (node_exporter
// refuses a metric whose help differs between files).
var metricHelp = map[string]string{
	"natcheck_success":                     "1 when the run got its answer (a STUN server answered), 0 when not.",
	"natcheck_duration_seconds":            "How long the run took.",
	"natcheck_run_timestamp_seconds":       "When the run started, in seconds since the Unix epoch.",
	"natcheck_public_ip_info":              "The public IP address the STUN servers saw, in the address label.",
	"natcheck_behind_nat":                  "1 when the public address is not one of this host's own, 0 when it is.",
	"natcheck_stun_servers_agreeing":       "STUN servers that reported the public IP.",
	"natcheck_stun_servers_disagreeing":    "STUN servers that reported another public IP.",
	"natcheck_nat_type":                    "The NAT type found: 1 for it, 0 for every other type.",
	"natcheck_nat_mapping":                 "The NAT's mapping behaviour (RFC 4787): 1 for the one found, 0 for the others.",
	"natcheck_nat_filtering":               "The NAT's filtering behaviour (RFC 4787): 1 for the one found, 0 for the others.",
	"natcheck_nat_port_preservation":       "1 when the NAT kept the local port, 0 when not; absent when not tested.",
	"natcheck_nat_hairpinning":             "1 when the NAT hairpins, 0 when not; absent when not tested.",
	"natcheck_nat_cgnat":                   "1 when a carrier-grade NAT was found, 0 when not; absent when not decided.",
	"natcheck_nat_alg":                     "1 when an ALG rewrote STUN addresses, 0 when not; absent when not tested.",
	"natcheck_stun_rfc5780_support":        "The RFC 5780 support of the server the NAT type tests used: 1 for the degree found, 0 for the others.",
	"natcheck_type_runs":                   "Runs of the NAT type tests (--runs).",
	"natcheck_type_runs_agreeing":          "Runs of the NAT type tests that found the majority verdict; 0 without a majority.",
	"natcheck_binding_lifetime_seconds":    "Bounds of the idle UDP mapping lifetime: it survived the lower bound and was gone after the upper.",
	"natcheck_check_status":                "Each check of the report: 1 for its status, 0 for the others.",
	"natcheck_port_mapping_supported":      "1 when the gateway supports the port-mapping protocol, 0 when not; absent when not decided.",
	"natcheck_double_nat":                  "1 when the gateway's external address is not the public one (double NAT), 0 when it is; absent when not decided.",
	"natcheck_ipv6_stun":                   "STUN over IPv6: 1 for the state found, 0 for the others.",
	"natcheck_tcp_mapping":                 "The NAT's TCP mapping behaviour: 1 for the one found, 0 for the others.",
	"natcheck_stun_server_up":              "1 when the STUN server answered, 0 when not.",
	"natcheck_stun_server_rtt_seconds":     "Round-trip time of the STUN server's answer.",
	"natcheck_turn_relay_works":            "1 when data went through the TURN relay, 0 when not.",
	"natcheck_stun_server_rfc5780_support": "Each STUN server's RFC 5780 support: 1 for the degree found, 0 for the others.",
}

// promDoc collects samples by metric, in the order metrics first appear,
// and writes each metric's samples together as the format requires.
type promDoc struct {
	order   []string
	samples map[string][]string
	err     error
}

// add records a sample; labels are name, value pairs, in order.
func (d *promDoc) add(name string, value float64, labels ...string) {
	if _, ok := metricHelp[name]; !ok && d.err == nil {
		d.err = fmt.Errorf("prometheus: metric %s has no help", name)
	}
	if d.samples == nil {
		d.samples = map[string][]string{}
	}
	if _, ok := d.samples[name]; !ok {
		d.order = append(d.order, name)
	}
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(value, 'f', -1, 64))
	d.samples[name] = append(d.samples[name], b.String())
}

// bool adds 1 or 0.
func (d *promDoc) bool(name string, b bool, labels ...string) {
	v := 0.0
	if b {
		v = 1
	}
	d.add(name, v, labels...)
}

// tri adds 1 or 0, and nothing for unknown.
func (d *promDoc) tri(name string, b tri.Bool, labels ...string) {
	if b != tri.Unknown {
		d.bool(name, b == tri.Yes, labels...)
	}
}

// stateSet adds one sample per value of values, labelled key=value: 1 for
// the one that is current, 0 for the others. A current value that is not
// among them is added too, so that no value is lost.
func stateSet[T ~string](d *promDoc, name, key string, values []T, current T, labels ...string) {
	found := false
	for _, v := range values {
		d.bool(name, v == current, append(labels[:len(labels):len(labels)], key, string(v))...)
		found = found || v == current
	}
	if !found {
		d.bool(name, true, append(labels[:len(labels):len(labels)], key, string(current))...)
	}
}

func (d *promDoc) write(w io.Writer) error {
	if d.err != nil {
		return d.err
	}
	var b strings.Builder
	for _, name := range d.order {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, metricHelp[name], name)
		for _, s := range d.samples[name] {
			b.WriteString(s + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// seconds is a duration in seconds, to the microsecond.
func seconds(d time.Duration) float64 { return d.Round(time.Microsecond).Seconds() }

// PromRun is what every command's metrics say about the run itself.
type PromRun struct {
	Command string    // whoami, type or report
	At      time.Time // when the run started
	Elapsed time.Duration
}

func (d *promDoc) run(r PromRun, success bool, labels ...string) {
	d.bool("natcheck_success", success, labels...)
	d.add("natcheck_duration_seconds", seconds(r.Elapsed), "command", r.Command)
	d.add("natcheck_run_timestamp_seconds", float64(r.At.UnixMilli())/1000, "command", r.Command)
}

func familyName(f stunclient.Family) string { return strings.ToLower(f.String()) }

// WhoAmIPrometheus writes whoami's metrics; w is nil when no server
// answered (natcheck_success 0 and no other finding).
func WhoAmIPrometheus(out io.Writer, r PromRun, f stunclient.Family, w *probe.WhoAmI) error {
	d := &promDoc{}
	l := []string{"command", r.Command, "family", familyName(f)}
	d.run(r, w != nil, l...)
	if w != nil {
		d.add("natcheck_public_ip_info", 1, append(l, "address", ipOf(w.Public))...)
		d.bool("natcheck_behind_nat", w.NAT, l...)
		d.add("natcheck_stun_servers_agreeing", float64(w.Agreed), l...)
		d.add("natcheck_stun_servers_disagreeing", float64(w.Differ), l...)
	}
	return d.write(out)
}

// rfc5780Degrees are the values of nat.RFC5780, for state sets.
var rfc5780Degrees = []nat.RFC5780{nat.RFC5780Verified, nat.RFC5780Advertised, nat.RFC5780Invalid, nat.RFC5780Absent, nat.RFC5780Unknown}

// behaviours are the values of nat.Mapping and nat.Filtering.
var (
	mappings   = []nat.Mapping{nat.EndpointIndependent, nat.AddressDependent, nat.AddressAndPortDependent, nat.MappingUnknown}
	filterings = []nat.Filtering{nat.EndpointIndependent, nat.AddressDependent, nat.AddressAndPortDependent, nat.FilteringUnknown}
)

// typeMetrics adds the NAT type tests' findings.
func (d *promDoc) typeMetrics(t *probe.TypeResult, runs *diagnose.Runs, l []string) {
	v := t.Verdict
	if v.Public.IsValid() {
		d.add("natcheck_public_ip_info", 1, append(l, "address", ipOf(v.Public))...)
	}
	d.tri("natcheck_behind_nat", v.NAT, l...)
	stateSet(d, "natcheck_nat_type", "type", nat.Types, v.Type, l...)
	stateSet(d, "natcheck_nat_mapping", "mapping", mappings, v.Mapping, l...)
	stateSet(d, "natcheck_nat_filtering", "filtering", filterings, v.Filtering, l...)
	d.tri("natcheck_nat_port_preservation", v.PortPreservation, l...)
	d.tri("natcheck_nat_hairpinning", v.Hairpinning, l...)
	d.tri("natcheck_nat_cgnat", v.CGNAT, l...)
	d.tri("natcheck_nat_alg", v.ALG, l...)
	if v.RFC5780 != "" {
		stateSet(d, "natcheck_stun_rfc5780_support", "support", rfc5780Degrees, v.RFC5780, l...)
	}
	if runs != nil {
		d.add("natcheck_type_runs", float64(len(runs.Runs)), l...)
		d.add("natcheck_type_runs_agreeing", float64(runs.Agreeing), l...)
	}
}

// lifetimeMetrics adds the lifetime measurement's bounds that were found.
func (d *promDoc) lifetimeMetrics(r *lifetime.Result, command string) {
	if r == nil {
		return
	}
	if r.Lower > 0 {
		d.add("natcheck_binding_lifetime_seconds", seconds(r.Lower), "command", command, "bound", "lower")
	}
	if r.Upper > 0 {
		d.add("natcheck_binding_lifetime_seconds", seconds(r.Upper), "command", command, "bound", "upper")
	}
}

// TypePrometheus writes type's metrics; t is nil when the tests failed
// (natcheck_success 0). runs is --runs' record, l the lifetime
// measurement, each nil when not asked for.
func TypePrometheus(out io.Writer, r PromRun, f stunclient.Family, t *probe.TypeResult, runs *diagnose.Runs, l *lifetime.Result) error {
	d := &promDoc{}
	labels := []string{"command", r.Command, "family", familyName(f)}
	d.run(r, t != nil, labels...)
	if t != nil {
		d.typeMetrics(t, runs, labels)
	}
	d.lifetimeMetrics(l, r.Command)
	return d.write(out)
}

// checkStatuses are the values of diagnose.Status.
var checkStatuses = []diagnose.Status{diagnose.StatusDone, diagnose.StatusFailed, diagnose.StatusTimeout, diagnose.StatusSkipped}

// ipv6States are the values of probe.IPv6Status.
var ipv6States = []probe.IPv6Status{probe.IPv6Works, probe.IPv6NoAnswer, probe.IPv6NoRoute, probe.IPv6NoServer}

// FullPrometheus writes report's metrics: natcheck_success says whether
// the NAT type check answered; then each check's status and findings.
func FullPrometheus(out io.Writer, in FullInput) error {
	r := in.Result
	const cmd = "report"
	d := &promDoc{}
	typeOK := r.Type != nil && !failed(r, diagnose.CheckType)
	run := PromRun{Command: cmd, At: in.At, Elapsed: r.Elapsed}
	c := []string{"command", cmd}
	v4 := append(c[:2:2], "family", "ipv4")
	d.run(run, typeOK, v4...)
	for _, ch := range r.Checks {
		stateSet(d, "natcheck_check_status", "status", checkStatuses, ch.Status, append(c[:2:2], "check", string(ch.Name))...)
	}
	if typeOK {
		d.typeMetrics(r.Type, r.TypeRuns, v4)
	}
	if r.IPv6 != nil && r.IPv6.STUN == probe.IPv6Works && r.IPv6.Public.IsValid() {
		d.add("natcheck_public_ip_info", 1, append(c[:2:2], "family", "ipv6", "address", ipOf(r.IPv6.Public))...)
	}
	if r.Portmap != nil {
		for _, p := range r.Portmap.Results {
			d.tri("natcheck_port_mapping_supported", p.Supported, append(c[:2:2], "protocol", string(p.Protocol))...)
		}
		d.tri("natcheck_double_nat", doubleNATJSON(portmapInput(r)).Detected, c...)
	}
	if r.IPv6 != nil {
		stateSet(d, "natcheck_ipv6_stun", "status", ipv6States, r.IPv6.STUN, c...)
	}
	if r.TCP != nil {
		stateSet(d, "natcheck_tcp_mapping", "mapping", mappings, r.TCP.Mapping, c...)
	}
	for _, s := range r.Servers {
		sl := append(c[:2:2], "server", s.Server.Input)
		d.bool("natcheck_stun_server_up", s.Replied, sl...)
		if s.Replied && s.RTT > 0 {
			d.add("natcheck_stun_server_rtt_seconds", seconds(s.RTT), sl...)
		}
		if s.Replied {
			stateSet(d, "natcheck_stun_server_rfc5780_support", "support", rfc5780Degrees, s.RFC5780, sl...)
		}
	}
	for _, t := range r.Turn {
		d.bool("natcheck_turn_relay_works", t.Verdict == turncheck.Works, append(c[:2:2], "server", t.URI.Raw)...)
	}
	d.lifetimeMetrics(r.Lifetime, cmd)
	return d.write(out)
}

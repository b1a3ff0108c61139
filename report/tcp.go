package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// TCPMappingJSON is the JSON form of `natcheck tcp`.
type TCPMappingJSON struct {
	SchemaVersion       int              `json:"schema_version"`
	Family              string           `json:"family"`
	Mapping             nat.Mapping      `json:"mapping"`              // endpoint-independent, address-dependent, address-and-port-dependent, unknown
	EndpointIndependent tri.Bool         `json:"endpoint_independent"` // null when not tested
	LocalAddress        string           `json:"local_address,omitempty"`
	Reason              string           `json:"reason,omitempty"`
	ElapsedMs           float64          `json:"elapsed_ms"`
	Servers             []TCPBindingJSON `json:"servers"`
	Tests               []TCPBindingJSON `json:"tests"`
}

// TCPBindingJSON is one Binding over TCP.
type TCPBindingJSON struct {
	Name          nat.TestName `json:"name"`
	To            string       `json:"to_address,omitempty"`
	Local         string       `json:"local_address,omitempty"`
	MappedAddress string       `json:"mapped_address,omitempty"`
	OtherAddress  string       `json:"other_address,omitempty"`
	RTTMs         *float64     `json:"rtt_ms"`
	Error         string       `json:"error,omitempty"`
}

// NewTCPMappingJSON converts a TCP mapping test to its JSON form.
func NewTCPMappingJSON(m *probe.TCPMapping) TCPMappingJSON {
	out := TCPMappingJSON{
		SchemaVersion:       SchemaVersion,
		Family:              strings.ToLower(m.Family.String()),
		Mapping:             m.Mapping,
		EndpointIndependent: m.EndpointIndependent,
		Reason:              m.Reason,
		ElapsedMs:           Millis(m.Elapsed),
		Servers:             tcpBindings(m.Servers),
		Tests:               tcpBindings(m.Tests),
	}
	if m.Local.IsValid() {
		out.LocalAddress = m.Local.String()
	}
	return out
}

func tcpBindings(rs []stunclient.TCPBindingResult) []TCPBindingJSON {
	out := make([]TCPBindingJSON, 0, len(rs))
	for _, r := range rs {
		j := TCPBindingJSON{Name: r.Name}
		if r.To.IsValid() {
			j.To = r.To.String()
		}
		if r.Local.IsValid() {
			j.Local = r.Local.String()
		}
		if r.Mapped.IsValid() {
			j.MappedAddress = r.Mapped.String()
		}
		if r.Other.IsValid() {
			j.OtherAddress = r.Other.String()
		}
		j.RTTMs = optMillis(r.RTT)
		if r.Err != nil {
			j.Error = errText(r.Err)
		}
		out = append(out, j)
	}
	return out
}

// TCPMappingLine is the one-line answer.
func TCPMappingLine(m *probe.TCPMapping) string {
	switch {
	case m.Mapping != nat.MappingUnknown:
		return "TCP mapping: " + string(m.Mapping)
	case m.EndpointIndependent == tri.No:
		return "TCP mapping: not endpoint-independent" + parenthesised(m.Reason)
	default:
		return "TCP mapping: unknown" + parenthesised(m.Reason)
	}
}

// TCPMappingText writes the answer line; verbose adds every connection.
func TCPMappingText(out io.Writer, m *probe.TCPMapping, verbose bool) error {
	if _, err := fmt.Fprintln(out, TCPMappingLine(m)); err != nil || !verbose {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "shared local port\t%s\n", AddrString(m.Local))
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(m.Elapsed))
	for _, group := range []struct {
		title string
		rs    []stunclient.TCPBindingResult
	}{{"servers", m.Servers}, {"tests", m.Tests}} {
		fmt.Fprintf(tw, "%s\t\n", group.title)
		for _, r := range group.rs {
			line := "saw " + AddrString(r.Mapped)
			if r.Err != nil {
				line = "(" + errText(r.Err) + ")"
			}
			fmt.Fprintf(tw, "  %s %s\tfrom %s\t%s\n", r.Name, AddrString(r.To), AddrString(r.Local), line)
		}
	}
	return tw.Flush()
}

// parenthesised is " (s)", or nothing for an empty s.
func parenthesised(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natcheck/natcheck/probe"
)

// SchemaVersion is the version of every JSON document natcheck prints. It
// changes only when a field changes meaning or disappears; new fields may
// appear without a bump. See docs/json.md.
const SchemaVersion = 1

// WhoAmIJSON is the JSON form of `natcheck whoami`. Field names are a
// public contract.
type WhoAmIJSON struct {
	SchemaVersion      int          `json:"schema_version"`
	Family             string       `json:"family"`
	PublicIP           string       `json:"public_ip"`
	PublicPort         int          `json:"public_port"`
	LocalIP            string       `json:"local_ip"`
	LocalPort          int          `json:"local_port"`
	NAT                bool         `json:"nat"`
	AgreeingServers    int          `json:"agreeing_servers"`
	DisagreeingServers int          `json:"disagreeing_servers"`
	ElapsedMs          float64      `json:"elapsed_ms"`
	IgnoredPackets     int64        `json:"ignored_packets"`
	Servers            []ServerJSON `json:"servers"`
}

// ServerJSON is one server's part in a run.
type ServerJSON struct {
	Server        string       `json:"server"`
	Address       string       `json:"address,omitempty"`
	Status        probe.Status `json:"status"`
	RTTMs         *float64     `json:"rtt_ms"`
	MappedAddress string       `json:"mapped_address,omitempty"`
	Error         string       `json:"error,omitempty"`
}

// NewWhoAmIJSON converts a probe result to its JSON form.
func NewWhoAmIJSON(w *probe.WhoAmI) WhoAmIJSON {
	out := WhoAmIJSON{
		SchemaVersion:      SchemaVersion,
		Family:             strings.ToLower(w.Family.String()),
		PublicIP:           w.Public.Addr().String(),
		PublicPort:         int(w.Public.Port()),
		LocalIP:            w.Local.Addr().String(),
		LocalPort:          int(w.Local.Port()),
		NAT:                w.NAT,
		AgreeingServers:    w.Agreed,
		DisagreeingServers: w.Differ,
		ElapsedMs:          Millis(w.Elapsed),
		IgnoredPackets:     w.Ignored,
		Servers:            ServersJSON(w.Servers),
	}
	return out
}

// ServersJSON converts per-server results.
func ServersJSON(rs []probe.ServerResult) []ServerJSON {
	out := make([]ServerJSON, 0, len(rs))
	for _, r := range rs {
		s := ServerJSON{Server: r.Server.Input, Status: r.Status}
		if r.Address.IsValid() {
			s.Address = r.Address.String()
		}
		s.RTTMs = optMillis(r.RTT)
		if r.Mapped.IsValid() {
			s.MappedAddress = r.Mapped.String()
		}
		if r.Err != nil && r.Status != probe.StatusSkipped {
			s.Error = errText(r.Err)
		}
		out = append(out, s)
	}
	return out
}

// Millis is a duration in milliseconds, rounded to microseconds.
func Millis(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

// msPtr is Millis for a JSON field that is null when unset.
func msPtr(d time.Duration) *float64 {
	ms := Millis(d)
	return &ms
}

// optMillis is msPtr for a duration that counts only when positive.
func optMillis(d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	return msPtr(d)
}

// errText is err's text for a report, or "" for nil: results carry
// errors, and only the renderers turn them into text, on one line.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return OneLine(err.Error())
}

// WriteJSON writes v as one indented JSON object and a newline.
func WriteJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "->" in notes stays readable; this is not HTML
	return enc.Encode(v)
}

// WhoAmIText writes the public IP alone on the first line, so that
// `ip=$(natcheck whoami)` works; verbose adds readable evidence lines.
func WhoAmIText(out io.Writer, w *probe.WhoAmI, verbose bool) error {
	if _, err := fmt.Fprintln(out, w.Public.Addr()); err != nil || !verbose {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	nat := "no: the public address is one of this host's own"
	if w.NAT {
		nat = "yes: the public address is not one of this host's own"
	}
	fmt.Fprintf(tw, "public address\t%s\n", w.Public)
	fmt.Fprintf(tw, "local address\t%s\n", w.Local)
	fmt.Fprintf(tw, "behind NAT\t%s\n", nat)
	fmt.Fprintf(tw, "agreement\t%s\n", agreement(w))
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(w.Elapsed))
	fmt.Fprintf(tw, "servers\t\n")
	for _, r := range w.Servers {
		fmt.Fprintf(tw, "  %s\t%s\n", r.Server.Input, serverLine(r))
	}
	return tw.Flush()
}

func agreement(w *probe.WhoAmI) string {
	switch {
	case w.Differ > 0:
		return fmt.Sprintf("servers DISAGREE: %d saw %s, %d saw another address", w.Agreed, w.Public.Addr(), w.Differ)
	case w.Agreed >= 2:
		return fmt.Sprintf("%d servers agree", w.Agreed)
	default:
		return "one server answered (not confirmed by a second)"
	}
}

func serverLine(r probe.ServerResult) string {
	parts := []string{string(r.Status)}
	if r.Address.IsValid() && r.Address.String() != r.Server.Input {
		parts = append(parts, "at "+r.Address.String())
	}
	if r.RTT > 0 {
		parts = append(parts, "rtt "+FormatDuration(r.RTT))
	}
	if r.Mapped.IsValid() {
		parts = append(parts, "saw "+r.Mapped.String())
	}
	if r.Err != nil && r.Status != probe.StatusSkipped {
		parts = append(parts, "("+errText(r.Err)+")")
	}
	return strings.Join(parts, "  ")
}

// FormatDuration prints durations the way people read them: 0.8 ms, 41 ms, 1.20 s.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// AddrString prints an address, or "-" when absent.
func AddrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

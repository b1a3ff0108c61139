package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natcheck/natcheck/probe/turncheck"
)

// TurnJSON is the JSON form of `natcheck turn`.
type TurnJSON struct {
	SchemaVersion int              `json:"schema_version"`
	Servers       []TurnServerJSON `json:"servers"`
	ElapsedMs     float64          `json:"elapsed_ms"`
}

// TurnServerJSON is one server's check (also the items of report's "turn").
type TurnServerJSON struct {
	Server           string              `json:"server"`
	Transport        turncheck.Transport `json:"transport"`
	Address          string              `json:"address"`
	Verdict          turncheck.Verdict   `json:"verdict"`
	FailedStep       turncheck.StepName  `json:"failed_step"`
	ErrorCode        int                 `json:"error_code"`
	Cause            string              `json:"cause"`
	Steps            []TurnStepJSON      `json:"steps"`
	RelayedAddress   string              `json:"relayed_address"`
	RelayedFamily    string              `json:"relayed_family"`
	ReflexiveAddress string              `json:"reflexive_address"`
	LifetimeS        float64             `json:"lifetime_s"`
	RefreshedS       float64             `json:"refreshed_lifetime_s"`
	Software         string              `json:"software"`
	Realm            string              `json:"realm"`
	Packets          *TurnPacketsJSON    `json:"packets"`
	ElapsedMs        float64             `json:"elapsed_ms"`
}

// TurnStepJSON is one step.
type TurnStepJSON struct {
	Name      turncheck.StepName `json:"name"`
	OK        bool               `json:"ok"`
	ElapsedMs float64            `json:"elapsed_ms"`
	Error     string             `json:"error,omitempty"`
}

// TurnPacketsJSON is the data test.
type TurnPacketsJSON struct {
	Sent      int     `json:"sent"`
	Forwarded int     `json:"forwarded"`
	Received  int     `json:"received"`
	Loss      float64 `json:"loss"`
	RTTMs     float64 `json:"rtt_ms"`
	JitterMs  float64 `json:"jitter_ms"`
}

// NewTurnJSON converts a turn run.
func NewTurnJSON(rs []turncheck.Result, elapsed time.Duration) TurnJSON {
	return TurnJSON{SchemaVersion: SchemaVersion, Servers: TurnServersJSON(rs), ElapsedMs: Millis(elapsed)}
}

// TurnServersJSON converts each server's check.
func TurnServersJSON(rs []turncheck.Result) []TurnServerJSON {
	out := make([]TurnServerJSON, 0, len(rs))
	for _, r := range rs {
		j := TurnServerJSON{
			Server: r.URI.Raw, Transport: r.URI.Transport, Verdict: r.Verdict, FailedStep: r.FailedStep,
			ErrorCode: r.ErrorCode, Cause: OneLine(r.Cause), Steps: []TurnStepJSON{},
			LifetimeS: r.Lifetime.Seconds(), RefreshedS: r.Refreshed.Seconds(), Software: r.Software, Realm: r.Realm, ElapsedMs: Millis(r.Elapsed),
		}
		if r.Address.IsValid() {
			j.Address = r.Address.String()
		}
		if r.Relayed.IsValid() {
			j.RelayedAddress = r.Relayed.String()
			j.RelayedFamily = "ipv4"
			if r.Relayed.Addr().Is6() {
				j.RelayedFamily = "ipv6"
			}
		}
		if r.Reflexive.IsValid() {
			j.ReflexiveAddress = r.Reflexive.String()
		}
		for _, s := range r.Steps {
			sj := TurnStepJSON{Name: s.Name, OK: s.OK, ElapsedMs: Millis(s.Elapsed)}
			if s.Err != nil {
				sj.Error = errText(s.Err)
			}
			j.Steps = append(j.Steps, sj)
		}
		if p := r.Packets; p != nil {
			j.Packets = &TurnPacketsJSON{Sent: p.Sent, Forwarded: p.Forwarded, Received: p.Received,
				Loss: float64(int(p.Loss*1000+0.5)) / 1000, RTTMs: Millis(p.RTT), JitterMs: Millis(p.Jitter)}
		}
		out = append(out, j)
	}
	return out
}

// TurnLine is a server's one-line verdict.
func TurnLine(r turncheck.Result) string {
	switch r.Verdict {
	case turncheck.Works:
		p := r.Packets
		return fmt.Sprintf("relay works: %d/%d packets, rtt %s via %s", p.Received, p.Sent, FormatDuration(p.RTT), AddrString(r.Relayed))
	case turncheck.Unreachable:
		return "unreachable: " + OneLine(r.Cause)
	default:
		return "relay failed: " + OneLine(r.Cause)
	}
}

// TurnText writes one verdict line per server (followed by the server when
// there are several); verbose adds every step.
func TurnText(out io.Writer, rs []turncheck.Result, verbose bool) error {
	for _, r := range rs {
		line := TurnLine(r)
		if len(rs) > 1 {
			line += " (" + r.URI.Raw + ")"
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	if !verbose {
		return nil
	}
	for _, r := range rs {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "\n%s\t%s %s\n", r.URI.Raw, r.URI.Transport, AddrString(r.Address))
		for _, s := range r.Steps {
			state := "ok"
			if !s.OK {
				state = "FAILED: " + errText(s.Err)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, FormatDuration(s.Elapsed), state)
		}
		if r.Realm != "" || r.Software != "" {
			fmt.Fprintf(tw, "  realm\t%s\tsoftware %s\n", r.Realm, r.Software)
		}
		if r.Relayed.IsValid() {
			refreshed := ""
			if r.Refreshed > 0 {
				refreshed = fmt.Sprintf(", refreshed to %s", r.Refreshed)
			}
			fmt.Fprintf(tw, "  relayed\t%s\tlifetime %s%s\n", r.Relayed, r.Lifetime, refreshed)
		}
		if r.Reflexive.IsValid() {
			fmt.Fprintf(tw, "  reflexive\t%s\t\n", r.Reflexive)
		}
		if p := r.Packets; p != nil {
			fmt.Fprintf(tw, "  packets\t%d sent, %d at B, %d back\tloss %.0f%%, rtt %s, jitter %s\n",
				p.Sent, p.Forwarded, p.Received, p.Loss*100, FormatDuration(p.RTT), FormatDuration(p.Jitter))
		}
		fmt.Fprintf(tw, "  time\t%s\t\n", FormatDuration(r.Elapsed))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// TurnMarkdown is the TURN section of report's Markdown.
func TurnMarkdown(out io.Writer, rs []turncheck.Result) error {
	var b strings.Builder
	b.WriteString("| Server | Verdict | Relayed | Packets | RTT | Cause |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		packets, rtt := "", ""
		if p := r.Packets; p != nil {
			packets = fmt.Sprintf("%d/%d", p.Received, p.Sent)
			rtt = FormatDuration(p.RTT)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", mdCell(r.URI.Raw), r.Verdict, AddrString(r.Relayed), packets, rtt, mdCell(r.Cause))
	}
	_, err := io.WriteString(out, b.String())
	return err
}

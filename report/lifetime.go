package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natcheck/natcheck/probe/lifetime"
)

// LifetimeJSON is the JSON form of `natcheck lifetime`. Durations are in
// milliseconds; a bound that was not found is null.
type LifetimeJSON struct {
	SchemaVersion  int                  `json:"schema_version"`
	Family         string               `json:"family"`
	Method         lifetime.Method      `json:"method"`
	Established    bool                 `json:"established"` // mappings exchanged twice before idling
	Server         string               `json:"server,omitempty"`
	Result         lifetime.Outcome     `json:"result"`
	LowerMs        *float64             `json:"lower_ms"`
	UpperMs        *float64             `json:"upper_ms"`
	EstimateMs     *float64             `json:"estimate_ms"`
	Reason         string               `json:"reason,omitempty"`
	Rounds         int                  `json:"rounds"`
	Contradictions int                  `json:"contradictions"`
	ElapsedMs      float64              `json:"elapsed_ms"`
	Servers        []LifetimeServerJSON `json:"servers"`
	Probes         []LifetimeProbeJSON  `json:"probes"`
}

// LifetimeServerJSON is one server's RESPONSE-PORT check.
type LifetimeServerJSON struct {
	Server       string `json:"server"`
	Address      string `json:"address,omitempty"`
	ResponsePort string `json:"response_port"` // supported, ignored, error-reply, no-answer, not-checked
	ErrorCode    int    `json:"error_code,omitempty"`
	// MappedAddress is what the plain binding before the check showed.
	MappedAddress string `json:"mapped_address,omitempty"`
	Error         string `json:"error,omitempty"`
}

// LifetimeProbeJSON is one idle mapping.
type LifetimeProbeJSON struct {
	Round         int                 `json:"round"`
	TargetMs      float64             `json:"target_ms"`
	IdleMs        *float64            `json:"idle_ms"` // null unless alive or expired
	State         lifetime.ProbeState `json:"state"`
	MappedAddress string              `json:"mapped_address,omitempty"`
}

// NewLifetimeJSON converts a measurement to its JSON form.
func NewLifetimeJSON(l *lifetime.Result) LifetimeJSON {
	out := LifetimeJSON{
		SchemaVersion:  SchemaVersion,
		Family:         strings.ToLower(l.Family.String()),
		Method:         l.Method,
		Established:    l.Established,
		Result:         l.Result,
		Reason:         l.Reason,
		Rounds:         l.Rounds,
		Contradictions: l.Contradictions,
		ElapsedMs:      Millis(l.Elapsed),
		Servers:        []LifetimeServerJSON{},
		Probes:         []LifetimeProbeJSON{},
	}
	if l.Server.IsValid() {
		out.Server = l.Server.String()
	}
	out.LowerMs = optMillis(l.Lower)
	out.UpperMs = optMillis(l.Upper)
	out.EstimateMs = optMillis(l.Estimate())
	for _, s := range l.Servers {
		j := LifetimeServerJSON{Server: s.Server.Input, ResponsePort: string(s.Support), ErrorCode: s.ErrorCode}
		if s.Support == lifetime.RPNotChecked {
			j.ResponsePort = "not-checked"
		}
		if s.Address.IsValid() {
			j.Address = s.Address.String()
		}
		if s.Mapped.IsValid() {
			j.MappedAddress = s.Mapped.String()
		}
		if s.Err != nil {
			j.Error = errText(s.Err)
		}
		out.Servers = append(out.Servers, j)
	}
	for _, p := range l.Probes {
		j := LifetimeProbeJSON{Round: p.Round, TargetMs: Millis(p.Target), State: p.State}
		if p.State == lifetime.ProbeAlive || p.State == lifetime.ProbeExpired {
			j.IdleMs = msPtr(p.Idle)
		}
		if p.Mapped.IsValid() {
			j.MappedAddress = p.Mapped.String()
		}
		out.Probes = append(out.Probes, j)
	}
	return out
}

// LifetimeLine is the one-line answer.
func LifetimeLine(l *lifetime.Result) string {
	what := "UDP mapping lifetime"
	if l.Established {
		what = "UDP mapping lifetime (established flow)"
	}
	return what + ": " + lifetimeAnswer(l)
}

func lifetimeAnswer(l *lifetime.Result) string {
	switch l.Result {
	case lifetime.Measured:
		return fmt.Sprintf("about %s (alive after %s idle, gone after %s)",
			roughDuration(l.Estimate()), FormatDuration(l.Lower), FormatDuration(l.Upper))
	case lifetime.LongerThanMax:
		return fmt.Sprintf("longer than %s (still alive at the longest idle time probed)", FormatDuration(l.Lower))
	case lifetime.NoNAT:
		return "no NAT mapping to measure (" + l.Reason + ")"
	case lifetime.ShorterThanMin:
		return fmt.Sprintf("shorter than %s (gone at the shortest idle time probed)", FormatDuration(l.Upper))
	default:
		return "unknown (" + l.Reason + ")"
	}
}

// roughDuration rounds a lifetime the way a person would quote it.
func roughDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// LifetimeText writes the answer line; verbose adds the method, the server,
// and every probe.
func LifetimeText(out io.Writer, l *lifetime.Result, verbose bool) error {
	if _, err := fmt.Fprintln(out, LifetimeLine(l)); err != nil || !verbose {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	how := "a second socket asks the server to answer to the idle mapping"
	if l.Method == lifetime.MethodPortChange {
		how = "the idle socket asks again; a new public port means the mapping had expired"
	}
	fmt.Fprintf(tw, "method\t%s: %s\n", l.Method, how)
	fmt.Fprintf(tw, "server\t%s\n", AddrString(l.Server))
	traffic := "one request and reply, then idle"
	if l.Established {
		traffic = "two exchanges 2.5 s apart (an established flow), then idle"
	}
	fmt.Fprintf(tw, "each mapping\t%s\n", traffic)
	if l.Reason != "" && l.Result != lifetime.Unknown && l.Result != lifetime.NoNAT {
		fmt.Fprintf(tw, "note\t%s\n", l.Reason)
	}
	if l.Contradictions > 0 {
		fmt.Fprintf(tw, "contradictions\t%d mapping(s) expired before a longer-idle one survived (loss?); left out of the bounds\n", l.Contradictions)
	}
	fmt.Fprintf(tw, "rounds\t%d\n", l.Rounds)
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(l.Elapsed))
	fmt.Fprintf(tw, "servers\t\n")
	for _, s := range l.Servers {
		support := string(s.Support)
		if s.Support == lifetime.RPNotChecked {
			support = "not checked"
		}
		line := "RESPONSE-PORT " + support
		if s.Err != nil && s.Support != lifetime.RPSupported {
			line += "  (" + errText(s.Err) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.Server.Input, line)
	}
	if len(l.Probes) > 0 {
		fmt.Fprintf(tw, "probes\t\n")
	}
	for _, p := range l.Probes {
		idle := ""
		if p.State == lifetime.ProbeAlive || p.State == lifetime.ProbeExpired {
			idle = "idle " + FormatDuration(p.Idle)
		}
		fmt.Fprintf(tw, "  round %d, aim %s\t%s\t%s\n", p.Round, FormatDuration(p.Target), p.State, idle)
	}
	return tw.Flush()
}

// LifetimeOrError writes the lifetime section of `natcheck type --lifetime`:
// the measurement, or why there is none.
func LifetimeOrError(out io.Writer, l *lifetime.Result, err error, verbose bool) error {
	if l == nil {
		msg := "UDP mapping lifetime: not measured"
		if err != nil {
			msg += " (" + errText(err) + ")"
		}
		_, werr := fmt.Fprintln(out, msg)
		return werr
	}
	return LifetimeText(out, l, verbose)
}

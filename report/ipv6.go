package report

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe"
)

// IPv6JSON is the JSON form of `natcheck ipv6`.
type IPv6JSON struct {
	SchemaVersion   int              `json:"schema_version"`
	GlobalAddresses []string         `json:"global_addresses"`
	ULAAddresses    []string         `json:"ula_addresses"`
	STUN            probe.IPv6Status `json:"stun"`       // works, no-answer, no-route, no-server
	Path            probe.IPv6Path   `json:"path"`       // routed, translated, unknown
	Translated      tri.Bool         `json:"translated"` // null when unknown
	PublicIP        string           `json:"public_ip,omitempty"`
	PublicPort      int              `json:"public_port,omitempty"`
	LocalIP         string           `json:"local_ip,omitempty"`
	LocalPort       int              `json:"local_port,omitempty"`
	PortPreserved   tri.Bool         `json:"port_preservation"` // null unless translated
	Error           string           `json:"error,omitempty"`
	ElapsedMs       float64          `json:"elapsed_ms"`
	Servers         []ServerJSON     `json:"servers"`
}

// NewIPv6JSON converts a check to its JSON form.
func NewIPv6JSON(c *probe.IPv6Check) IPv6JSON {
	out := IPv6JSON{
		SchemaVersion:   SchemaVersion,
		GlobalAddresses: addrStrings(c.Global),
		ULAAddresses:    addrStrings(c.ULA),
		STUN:            c.STUN,
		Path:            c.Path,
		PortPreserved:   c.PortPreserved,
		ElapsedMs:       Millis(c.Elapsed),
		Servers:         []ServerJSON{},
	}
	if c.Path != probe.PathUnknown {
		out.Translated = tri.Of(c.Path == probe.PathTranslated)
	}
	if c.Public.IsValid() {
		out.PublicIP, out.PublicPort = c.Public.Addr().String(), int(c.Public.Port())
		out.LocalIP, out.LocalPort = c.Local.Addr().String(), int(c.Local.Port())
	}
	if c.Err != nil {
		out.Error = errText(c.Err)
	}
	if c.WhoAmI != nil {
		out.Servers = ServersJSON(c.WhoAmI.Servers)
	}
	return out
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// IPv6Line is the one-line answer.
func IPv6Line(c *probe.IPv6Check) string {
	switch {
	case c.STUN != probe.IPv6Works:
		why := map[probe.IPv6Status]string{
			probe.IPv6NoAnswer: "no STUN server answered over IPv6",
			probe.IPv6NoRoute:  "this host cannot send IPv6 to the servers (no address or route)",
			probe.IPv6NoServer: "no STUN server has an IPv6 address",
		}[c.STUN]
		return fmt.Sprintf("IPv6: unusable for STUN (%s)", why)
	case c.Path == probe.PathTranslated:
		return fmt.Sprintf("IPv6: works, translated (NAT66/NPTv6): servers see %s, not this host's %s", c.Public.Addr(), c.Local.Addr())
	default:
		return fmt.Sprintf("IPv6: works, routed (no translation): servers see this host's own %s", c.Public.Addr())
	}
}

// IPv6Text writes the answer line; verbose adds addresses and servers.
func IPv6Text(out io.Writer, c *probe.IPv6Check, verbose bool) error {
	if _, err := fmt.Fprintln(out, IPv6Line(c)); err != nil || !verbose {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "global addresses\t%s\n", listOrNone(c.Global))
	fmt.Fprintf(tw, "unique local addresses\t%s\n", listOrNone(c.ULA))
	if c.Public.IsValid() {
		fmt.Fprintf(tw, "public address\t%s\n", c.Public)
		fmt.Fprintf(tw, "local address\t%s\n", c.Local)
	}
	if c.PortPreserved != tri.Unknown {
		fmt.Fprintf(tw, "port preserved\t%v\n", c.PortPreserved == tri.Yes)
	}
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(c.Elapsed))
	if c.WhoAmI != nil {
		fmt.Fprintf(tw, "servers\t\n")
		for _, r := range c.WhoAmI.Servers {
			fmt.Fprintf(tw, "  %s\t%s\n", r.Server.Input, serverLine(r))
		}
	}
	return tw.Flush()
}

func listOrNone(as []netip.Addr) string {
	if len(as) == 0 {
		return "none"
	}
	return strings.Join(addrStrings(as), ", ")
}

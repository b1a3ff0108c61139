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

// ServersJSONDoc is the JSON form of `natcheck servers`.
type ServersJSONDoc struct {
	SchemaVersion int               `json:"schema_version"`
	Family        string            `json:"family"`
	Probed        bool              `json:"probed"`
	Servers       []ServerCheckJSON `json:"servers"`
}

// ServerCheckJSON is one server, probed or not.
type ServerCheckJSON struct {
	Server        string      `json:"server"`
	Host          string      `json:"host"`
	Port          int         `json:"port"`
	Address       string      `json:"address,omitempty"`
	Reachable     tri.Bool    `json:"reachable"` // null when not probed
	RTTMs         *float64    `json:"rtt_ms"`
	MappedAddress string      `json:"mapped_address,omitempty"`
	OtherAddress  string      `json:"other_address,omitempty"`
	RFC5780       nat.RFC5780 `json:"rfc5780,omitempty"` // verified, advertised, invalid, absent (answered without OTHER-ADDRESS) or unknown (no answer)
	Error         string      `json:"error,omitempty"`
}

// NewServersJSON lists servers; checks is nil when they were not probed.
func NewServersJSON(f stunclient.Family, servers []stunclient.Server, checks []probe.ServerCheck) ServersJSONDoc {
	doc := ServersJSONDoc{SchemaVersion: SchemaVersion, Family: strings.ToLower(f.String()), Probed: checks != nil}
	for i, s := range servers {
		j := ServerCheckJSON{Server: s.Input, Host: s.Host, Port: s.Port}
		if checks != nil {
			c := checks[i]
			j.Reachable = tri.Of(c.Replied)
			if c.Address.IsValid() {
				j.Address = c.Address.String()
			}
			if c.Replied {
				j.RTTMs = msPtr(c.RTT)
				j.MappedAddress = c.Mapped.String()
			}
			if c.Other.IsValid() {
				j.OtherAddress = c.Other.String()
			}
			j.RFC5780, j.Error = c.RFC5780, errText(c.Err)
		}
		doc.Servers = append(doc.Servers, j)
	}
	return doc
}

// ServersText lists servers one per line; probed, as a table.
func ServersText(out io.Writer, servers []stunclient.Server, checks []probe.ServerCheck) error {
	if checks == nil {
		for _, s := range servers {
			if _, err := fmt.Fprintln(out, s.Input); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tRTT\tRFC 5780\tNOTE")
	for i, s := range servers {
		c := checks[i]
		rtt, note := "-", errText(c.Err)
		if c.Replied {
			rtt = FormatDuration(c.RTT)
			note = ""
			if c.Other.IsValid() {
				note = "other address " + c.Other.String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Input, AddrString(c.Address), rtt, c.RFC5780, note)
	}
	return tw.Flush()
}

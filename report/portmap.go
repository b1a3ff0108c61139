package report

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
)

// PortmapInput is what `natcheck portmap` found: the gateway's port-mapping
// test and, for the double-NAT comparison, the STUN-mapped address.
type PortmapInput struct {
	Report     *portmap.Report
	STUNMapped netip.Addr // invalid when STUN was not asked or failed
	STUNErr    error      // why STUNMapped is missing, nil if not asked
	Elapsed    time.Duration
}

// PortmapJSON is the JSON form of `natcheck portmap`. Field names are a
// public contract (docs/portmap.md).
type PortmapJSON struct {
	SchemaVersion int                  `json:"schema_version"`
	Gateway       string               `json:"gateway"`
	LocalIP       string               `json:"local_ip"`
	ExternalIP    string               `json:"external_ip,omitempty"`
	UPnP          *PortmapProtocolJSON `json:"upnp"`
	NATPMP        *PortmapProtocolJSON `json:"nat_pmp"`
	PCP           *PortmapProtocolJSON `json:"pcp"`
	DoubleNAT     DoubleNATJSON        `json:"double_nat"`
	ElapsedMs     float64              `json:"elapsed_ms"`
}

// PortmapProtocolJSON is one protocol's result; tri-state fields are
// true, false or null (not tested / not decided).
type PortmapProtocolJSON struct {
	Supported      tri.Bool           `json:"supported"`
	Server         string             `json:"server,omitempty"`
	ExternalIP     string             `json:"external_ip,omitempty"`
	MappingAdded   tri.Bool           `json:"mapping_added"`
	MappingDeleted tri.Bool           `json:"mapping_deleted"`
	InternalPort   int                `json:"internal_port,omitempty"`
	ExternalPort   int                `json:"external_port,omitempty"`
	LifetimeS      int                `json:"lifetime_s,omitempty"`
	Error          string             `json:"error,omitempty"`
	Timings        PortmapTimingsJSON `json:"timings"`
}

// PortmapTimingsJSON are one protocol's step times; null for steps not taken.
type PortmapTimingsJSON struct {
	DiscoverMs   *float64 `json:"discover_ms"`
	ExternalIPMs *float64 `json:"external_ip_ms"`
	AddMs        *float64 `json:"add_ms"`
	DeleteMs     *float64 `json:"delete_ms"`
	TotalMs      float64  `json:"total_ms"`
}

// DoubleNATJSON is the double-NAT verdict and its evidence.
type DoubleNATJSON struct {
	Detected          tri.Bool `json:"detected"`
	Reason            string   `json:"reason"`
	GatewayExternalIP string   `json:"gateway_external_ip,omitempty"`
	STUNMappedIP      string   `json:"stun_mapped_ip,omitempty"`
	STUNError         string   `json:"stun_error,omitempty"`
}

// NewPortmapJSON converts a port-mapping run to its JSON form.
func NewPortmapJSON(in PortmapInput) PortmapJSON {
	r := in.Report
	out := PortmapJSON{
		SchemaVersion: SchemaVersion,
		Gateway:       r.Gateway.Addr.String(),
		LocalIP:       r.Gateway.Local.String(),
		ExternalIP:    addrString(r.ExternalIP()),
		DoubleNAT:     doubleNATJSON(in),
		ElapsedMs:     Millis(in.Elapsed),
	}
	for _, res := range r.Results {
		j := protocolJSON(res)
		switch res.Protocol {
		case portmap.UPnP:
			out.UPnP = j
		case portmap.NATPMP:
			out.NATPMP = j
		case portmap.PCP:
			out.PCP = j
		}
	}
	return out
}

func protocolJSON(r portmap.Result) *PortmapProtocolJSON {
	return &PortmapProtocolJSON{
		Supported:      r.Supported,
		Server:         r.Server,
		ExternalIP:     addrString(r.ExternalIP),
		MappingAdded:   r.MappingAdded,
		MappingDeleted: r.MappingDeleted,
		InternalPort:   int(r.InternalPort),
		ExternalPort:   int(r.ExternalPort),
		LifetimeS:      int(r.Lifetime / time.Second),
		Error:          errText(r.Err),
		Timings: PortmapTimingsJSON{
			DiscoverMs:   optMillis(r.Timings.Discover),
			ExternalIPMs: optMillis(r.Timings.ExternalIP),
			AddMs:        optMillis(r.Timings.Add),
			DeleteMs:     optMillis(r.Timings.Delete),
			TotalMs:      Millis(r.Timings.Total),
		},
	}
}

func doubleNATJSON(in PortmapInput) DoubleNATJSON {
	gw := in.Report.ExternalIP()
	verdict, reason := portmap.DoubleNAT(gw, in.STUNMapped)
	return DoubleNATJSON{
		Detected:          verdict,
		Reason:            reason,
		GatewayExternalIP: addrString(gw),
		STUNMappedIP:      addrString(in.STUNMapped),
		STUNError:         errText(in.STUNErr),
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// PortmapText writes the verdict on the first line (which protocols the
// gateway supports, and double NAT), then one line per protocol.
func PortmapText(out io.Writer, in PortmapInput, verbose bool) error {
	r := in.Report
	var parts []string
	for _, res := range r.Results {
		part := res.Protocol.Name() + " " + res.Supported.String()
		if res.Supported == tri.Yes && res.MappingAdded == tri.No {
			// The service answers but grants nothing: for an application
			// that is as good as none, and the headline must not suggest
			// otherwise.
			part += " (mapping refused)"
		}
		parts = append(parts, part)
	}
	dn := doubleNATJSON(in)
	if _, err := fmt.Fprintf(out, "port mapping: %s; double NAT: %s\n", strings.Join(parts, ", "), dn.Detected); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "gateway\t%s (from %s)\n", r.Gateway.Addr, r.Gateway.Local)
	if a := r.ExternalIP(); a.IsValid() {
		fmt.Fprintf(tw, "gateway's external address\t%s\n", a)
	}
	fmt.Fprintf(tw, "double NAT\t%s: %s\n", dn.Detected, dn.Reason)
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\n", res.Protocol.Name(), protocolLine(res))
		if t := timingsLine(res.Timings); verbose && t != "" {
			fmt.Fprintf(tw, "\t%s\n", t)
		}
	}
	if verbose && in.STUNErr != nil {
		fmt.Fprintf(tw, "STUN\t%s\n", in.STUNErr)
	}
	fmt.Fprintf(tw, "time\t%s\n", FormatDuration(in.Elapsed))
	return tw.Flush()
}

func protocolLine(r portmap.Result) string {
	var parts []string
	switch r.Supported {
	case tri.Yes:
		parts = append(parts, "supported")
	case tri.No:
		parts = append(parts, "not supported")
	default:
		parts = append(parts, "unknown")
	}
	if r.ExternalIP.IsValid() {
		parts = append(parts, "external "+r.ExternalIP.String())
	}
	switch {
	case r.MappingAdded == tri.Yes:
		m := fmt.Sprintf("mapping udp %d->%d added", r.ExternalPort, r.InternalPort)
		switch r.MappingDeleted {
		case tri.Yes:
			m += " and deleted"
		case tri.No:
			m += " but NOT DELETED (it expires by itself)"
		}
		parts = append(parts, m)
	case r.MappingAdded == tri.No:
		parts = append(parts, "mapping refused")
	}
	if r.Err != nil {
		parts = append(parts, "("+errText(r.Err)+")")
	}
	parts = append(parts, FormatDuration(r.Timings.Total))
	return strings.Join(parts, "  ")
}

func timingsLine(t portmap.Timings) string {
	var parts []string
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"discover", t.Discover}, {"external address", t.ExternalIP}, {"add", t.Add}, {"delete", t.Delete}} {
		if s.d > 0 {
			parts = append(parts, s.name+" "+FormatDuration(s.d))
		}
	}
	return strings.Join(parts, ", ")
}

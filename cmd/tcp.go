package cmd

import (
	"context"
	"time"

	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// tcpTimeout is tcp's default bound. The test is two steps (every server,
// then the shared-port connections), and through loss each connection
// set-up may wait for a SYN retransmission (after 1 s, then 3 s): 5 s lets
// a lossy path finish instead of ending unknown.
const tcpTimeout = 5 * time.Second

func newTCPCmd(d *Deps) *cobra.Command {
	var f probeFlags
	c := &cobra.Command{
		Use:   "tcp",
		Short: "Test the NAT's TCP mapping behaviour with STUN over TCP",
		Long: `tcp asks every server for a binding over TCP, then connects from one local
port to the first answering server and to other addresses (the server's
alternate IP and its OTHER-ADDRESS, as RFC 5780 section 4.3 does for UDP, or
else another server on another IP). If every connection is mapped to the
same public address and port, the NAT's TCP mapping is endpoint-independent,
which TCP hole punching and TURN-over-TCP fallbacks rely on.

--bind IP[:PORT] makes every connection leave from that address of this
host, and the shared-port connections from PORT (each server's first
binding still uses a port of its own).

Exit code 3 when no server answers over TCP.`,
		Example: `  natcheck tcp -s stun.example.net
  natcheck tcp --json -s 203.0.113.10 | jq .mapping`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTCP(c.Context(), d, &f)
		},
	}
	f.register(c)
	f.registerBind(c)
	f.timeout = tcpTimeout
	c.Flags().Lookup("timeout").DefValue = tcpTimeout.String()
	return c
}

func runTCP(parent context.Context, d *Deps, f *probeFlags) error {
	r, err := f.resolve(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	m, err := probe.RunTCPMapping(ctx, probe.TCPMappingOptions{Servers: r.servers, Family: r.family, Resolver: r.resolver, Bind: r.bind})
	if err != nil {
		return r.runError(parent, err)
	}
	if f.json {
		return report.WriteJSON(d.Out, report.NewTCPMappingJSON(m))
	}
	return report.TCPMappingText(d.Out, m, f.verbose)
}

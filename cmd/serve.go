package cmd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/natcheck/natcheck/rendezvous"
	"github.com/natcheck/natcheck/server"
)

type serveOptions struct {
	listen      []string
	advertise   []string
	port        int
	altPort     int
	workers     int
	batch       int
	rateLimit   float64
	rateBurst   int
	noTCP       bool
	maxTCPConns int
	metrics     string
	software    string

	rendezvous  bool
	rdvTTL      time.Duration
	rdvMaxCodes int
}

func newServeCmd(d *Deps) *cobra.Command {
	o := &serveOptions{}
	c := &cobra.Command{
		Use:   "serve --listen IP [--listen IP2]",
		Short: "Run an RFC 5780 STUN server (NAT behaviour discovery)",
		Long: `serve answers STUN Binding requests over UDP and TCP, with the RFC 5780
attributes NAT behaviour tests need.

With two addresses of one family it listens on all four address/port pairs
and honours CHANGE-REQUEST; with one it honours a port change only, and
answers a change of address with error 420. IPv4 and IPv6 pairs can be
served side by side (up to two addresses per family).

It never answers malformed packets, keeps every UDP answer within 4 times
the request's size, limits each source's request rate, and bounds its
memory.

Behind a 1:1 NAT (a cloud VM whose interfaces carry private addresses the
provider maps to public ones), give each --listen its public address with
--advertise, in the same order: RESPONSE-ORIGIN and OTHER-ADDRESS must name
addresses clients can reach. Ports are kept, so open UDP and TCP 3478-3479
to both public addresses (docs/serve.md has a walk-through).

With --rendezvous it also lets two natcheck peer --via runs meet on the
same UDP ports: per code it keeps at most two encrypted blobs it cannot
read, for at most --rendezvous-ttl (2m). Logs go to stderr; --metrics serves Prometheus text on /metrics.
SIGINT or SIGTERM stop it cleanly (exit code 0).`,
		Example: `  natcheck serve --listen 203.0.113.10 --listen 203.0.113.11
  natcheck serve --listen 192.0.2.1 --port 3478 --alt-port 3479 --metrics 127.0.0.1:9478
  natcheck serve --listen 2001:db8::10 --listen 2001:db8::11 --rate-limit 0
  natcheck serve --listen 192.0.2.1 --rendezvous
  natcheck serve --listen 172.31.0.10 --advertise 203.0.113.10 --listen 172.31.0.11 --advertise 203.0.113.11`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := o.config(d.ErrOut)
			if err != nil {
				return err
			}
			return runServe(c, cfg)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&o.listen, "listen", nil, "IP address to serve; give it twice for RFC 5780 change-IP (primary, then alternate)")
	f.StringArrayVar(&o.advertise, "advertise", nil, "public IP a 1:1 NAT maps a --listen address to, named in RESPONSE-ORIGIN and OTHER-ADDRESS; one per --listen, same order")
	f.IntVar(&o.port, "port", 3478, "primary port (UDP and TCP)")
	f.IntVar(&o.altPort, "alt-port", 3479, "alternate port, for CHANGE-REQUEST change-port")
	f.IntVar(&o.workers, "workers", 0, "UDP sockets per address and port (SO_REUSEPORT); 0 = one per CPU")
	f.IntVar(&o.batch, "batch", 32, "datagrams per recvmmsg/sendmmsg call; 1 = one per call")
	f.Float64Var(&o.rateLimit, "rate-limit", server.DefaultRateLimit, "requests per second allowed per source address (IPv4 address or IPv6 /64), all ports together; each port gets a quarter; 0 = unlimited")
	f.IntVar(&o.rateBurst, "rate-burst", 0, "requests a source address may send at once (each port a tenth); 0 = ten times --rate-limit")
	f.BoolVar(&o.noTCP, "no-tcp", false, "serve UDP only")
	f.IntVar(&o.maxTCPConns, "max-tcp-conns", 1024, "open TCP connections at most (8 per source address)")
	f.StringVar(&o.metrics, "metrics", "", "host:port serving Prometheus metrics on /metrics (off when empty)")
	f.StringVar(&o.software, "software", "natcheck", "SOFTWARE attribute value; empty to omit")
	f.BoolVar(&o.rendezvous, "rendezvous", false, "also serve the rendezvous of natcheck peer --via (UDP, primary and alternate ports)")
	f.DurationVar(&o.rdvTTL, "rendezvous-ttl", rendezvous.DefaultTTL, "how long a rendezvous code and its two encrypted blobs are kept (at most 5m)")
	f.IntVar(&o.rdvMaxCodes, "rendezvous-max-codes", rendezvous.DefaultMaxCodes, "rendezvous codes held at once")
	// serve is a daemon, not a probe: its exit codes are its own. (Set
	// before the command joins the tree, so UsageTemplate is cobra's plain
	// one, not the root's with the probes' codes.)
	c.SetUsageTemplate(c.UsageTemplate() + "\n" + serveExitCodesHelp + "\n")
	return c
}

// config turns flags into a server configuration; mistakes are usage errors.
func (o *serveOptions) config(log io.Writer) (server.Config, error) {
	if len(o.listen) == 0 {
		return server.Config{}, usageError("serve needs --listen IP (once, or twice for an alternate address)")
	}
	var addrs []netip.Addr
	for _, l := range o.listen {
		a, err := netip.ParseAddr(l)
		if err != nil {
			return server.Config{}, usageError("--listen %q is not an IP address", l)
		}
		addrs = append(addrs, a)
	}
	adv, err := o.advertised()
	if err != nil {
		return server.Config{}, err
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--port", o.port}, {"--alt-port", o.altPort}} {
		if p.v < 1 || p.v > 65535 {
			return server.Config{}, usageError("%s %d is not a port (1-65535)", p.name, p.v)
		}
	}
	if o.rateLimit < 0 || o.rateBurst < 0 || o.workers < 0 || o.batch < 0 || o.maxTCPConns < 0 {
		return server.Config{}, usageError("--rate-limit, --rate-burst, --workers, --batch and --max-tcp-conns cannot be negative")
	}
	if o.batch == 0 {
		return server.Config{}, usageError("--batch must be at least 1 (1 = one datagram per call)")
	}
	if math.IsNaN(o.rateLimit) || math.IsInf(o.rateLimit, 0) {
		return server.Config{}, usageError("--rate-limit %v is not a number of requests per second (0 = unlimited)", o.rateLimit)
	}
	if o.rdvTTL <= 0 || o.rdvTTL > rendezvous.MaxTTL {
		return server.Config{}, usageError("--rendezvous-ttl %v is out of range (above 0, at most %v)", o.rdvTTL, rendezvous.MaxTTL)
	}
	if o.rdvMaxCodes < 1 {
		return server.Config{}, usageError("--rendezvous-max-codes must be at least 1")
	}
	if len(o.software) > 128 {
		return server.Config{}, usageError("--software is longer than 128 bytes")
	}
	return server.Config{
		Addrs: addrs, Advertise: adv, Port: o.port, AltPort: o.altPort,
		Workers: o.workers, Batch: o.batch,
		RateLimit: o.rateLimit, RateBurst: o.rateBurst,
		NoTCP: o.noTCP, MaxTCPConns: o.maxTCPConns,
		Software: o.software, MetricsAddr: o.metrics,
		Rendezvous: o.rendezvous, RendezvousTTL: o.rdvTTL, RendezvousMaxCodes: o.rdvMaxCodes,
		Logf: stderrLogger(log),
	}, nil
}

// advertised parses --advertise: none, or one per --listen. Family and
// unicast checks are the server's (server.Config.Advertise).
func (o *serveOptions) advertised() ([]netip.Addr, error) {
	if len(o.advertise) == 0 {
		return nil, nil
	}
	if len(o.advertise) != len(o.listen) {
		return nil, usageError("%d --listen but %d --advertise: give one --advertise per --listen, in the same order", len(o.listen), len(o.advertise))
	}
	adv := make([]netip.Addr, 0, len(o.advertise))
	for _, s := range o.advertise {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, usageError("--advertise %q is not an IP address", s)
		}
		adv = append(adv, a)
	}
	return adv, nil
}

// stderrLogger writes timestamped lines; the mutex keeps lines whole when
// workers log at once.
func stderrLogger(w io.Writer) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s natcheck serve: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
}

func runServe(c *cobra.Command, cfg server.Config) error {
	ctx := c.Context()
	srv, err := server.Listen(ctx, cfg)
	if err != nil {
		var ce *server.ConfigError
		if errors.As(err, &ce) {
			return &UsageError{Err: err}
		}
		return err
	}
	if a := srv.MetricsAddr(); a != nil {
		cfg.Logf("metrics on http://%s/metrics", a)
	}
	// A server stopped by SIGINT/SIGTERM has done its job: exit 0.
	return srv.Serve(ctx)
}

const serveExitCodesHelp = `Exit codes:
  0    stopped by SIGINT or SIGTERM after serving
  1    could not serve (address not assigned, port in use, metrics listener)
  2    bad usage (unknown flag, an alternate address or port equal to the primary, a bad --advertise)`

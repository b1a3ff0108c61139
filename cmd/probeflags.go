package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/spf13/cobra"
)

// ServersEnv names the environment variable holding default servers
// (comma separated), used when no --server flag is given.
const ServersEnv = "NATCHECK_SERVERS"

// defaultTimeout bounds a whole run. Three seconds covers several
// retransmissions on a slow path while keeping a script's worst case short.
const defaultTimeout = 3 * time.Second

// probeFlags are the flags every probing command shares.
type probeFlags struct {
	servers []string
	ipv4    bool
	ipv6    bool
	timeout time.Duration
	json    bool
	verbose bool
	bind    string
}

func (f *probeFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVarP(&f.servers, "server", "s", nil,
		"`address` of a STUN server: host, host:port, [IPv6]:port or stun: URI (repeatable; default $"+ServersEnv+", then the built-in list)")
	fl.BoolVarP(&f.ipv4, "ipv4", "4", false, "use IPv4 (the default)")
	fl.BoolVarP(&f.ipv6, "ipv6", "6", false, "use IPv6")
	fl.DurationVar(&f.timeout, "timeout", defaultTimeout, "give up after this long (e.g. 1500ms, 10s for satellite links)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of text")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "show details and per-server evidence")
}

// registerBind adds --bind, for the commands that can test from a chosen
// local address.
func (f *probeFlags) registerBind(c *cobra.Command) {
	c.Flags().StringVar(&f.bind, "bind", "",
		"local `IP[:PORT]` to test from: an address of this host (every socket uses it) and, with PORT, the mapping socket's port")
}

// hideFamily hides -4 and -6 from the help of a command that chooses the
// address family itself.
func hideFamily(c *cobra.Command) {
	for _, name := range []string{"ipv4", "ipv6"} {
		c.Flags().MarkHidden(name)
	}
}

// resolved is what the flags mean once validated.
type resolved struct {
	servers  []stunclient.Server
	family   stunclient.Family
	timeout  time.Duration
	resolver stunclient.Resolver // d.Resolver: nil is the system's
	bind     netip.AddrPort      // zero without --bind; port 0 when none was given
	start    time.Time           // when the flags were resolved: the run's start
}

// resolve validates the flags; every failure is a usage error (exit 2).
// Without --server, the servers come from d's environment, then d's
// built-in list.
func (f *probeFlags) resolve(d *Deps) (resolved, error) {
	r := resolved{family: stunclient.IPv4, timeout: f.timeout, resolver: d.Resolver, start: time.Now()}
	if f.ipv4 && f.ipv6 {
		return r, usageError("-4 and -6 exclude each other")
	}
	if f.ipv6 {
		r.family = stunclient.IPv6
	}
	if f.timeout <= 0 {
		return r, usageError("--timeout must be positive, got %s", f.timeout)
	}
	switch {
	case len(f.servers) > 0:
		for _, s := range f.servers {
			list, err := stunclient.ParseServerList(s)
			if err != nil {
				return r, usageError("--server: %v", err)
			}
			r.servers = append(r.servers, list...)
		}
		if len(r.servers) == 0 {
			return r, usageError("--server names no STUN server")
		}
	case !blankServerList(d.Getenv(ServersEnv)):
		list, err := stunclient.ParseServerList(d.Getenv(ServersEnv))
		if err != nil {
			return r, usageError("$%s: %v", ServersEnv, err)
		}
		r.servers = list
	default:
		r.servers = d.DefaultServers()
	}
	if len(r.servers) == 0 {
		return r, usageError("no STUN server given")
	}
	r.servers = dedupe(r.servers)
	if err := r.fitFamily(f.ipv4); err != nil {
		return r, err
	}
	if f.bind == "" {
		return r, nil
	}
	bind, err := parseBind(f.bind, d)
	if err != nil {
		return r, err
	}
	r.bind = bind
	return r, r.fitBind(f.ipv4, f.ipv6)
}

// parseBind reads --bind's IP[:PORT] ([IPv6]:PORT with a port) and checks
// that the IP is one of the host's own addresses.
func parseBind(s string, d *Deps) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, aerr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if aerr != nil {
			return ap, usageError("--bind: %q is not IP, IP:PORT or [IPv6]:PORT", s)
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	a := ap.Addr().Unmap()
	ap = netip.AddrPortFrom(a, ap.Port())
	if a.IsUnspecified() || a.IsMulticast() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return ap, usageError("--bind: %s is not one address of this host (leave --bind out to use any)", a)
	}
	hostAddrs := d.HostAddrs
	if hostAddrs == nil {
		hostAddrs = systemAddrs
	}
	own, err := hostAddrs()
	if err != nil {
		return ap, fmt.Errorf("--bind: list this host's addresses: %w", err)
	}
	for _, o := range own {
		if o.Unmap() == a.WithZone("") {
			return ap, nil
		}
	}
	return ap, usageError("--bind: %s is not an address of this host", a)
}

// systemAddrs lists the addresses of the host's interfaces.
func systemAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// fitBind makes the family agree with --bind: an IPv6 address chooses
// IPv6 as an IPv6 server literal does; against -4/-6 or the servers'
// literal addresses it is bad usage.
func (r *resolved) fitBind(explicit4, explicit6 bool) error {
	is6 := r.bind.Addr().Is6()
	switch {
	case is6 && explicit4:
		return usageError("--bind %s is an IPv6 address, but -4 asks for IPv4", r.bind.Addr())
	case !is6 && explicit6:
		return usageError("--bind %s is an IPv4 address, but -6 asks for IPv6", r.bind.Addr())
	}
	want := stunclient.IPv4
	if is6 {
		want = stunclient.IPv6
	}
	for _, s := range r.servers {
		if a, err := netip.ParseAddr(s.Host); err == nil && a.Unmap().Is6() != is6 {
			return usageError("--bind %s is an %s address, but server %s is not", r.bind.Addr(), want, s.Input)
		}
	}
	r.family = want
	return nil
}

// blankServerList reports whether a $NATCHECK_SERVERS value names no
// server: empty, or only blanks and commas. Such a value counts as unset,
// as an empty one always has, and the built-in list is used.
func blankServerList(v string) bool {
	return strings.Trim(v, " \t\r\n,") == ""
}

// dedupe drops servers named twice (also as "host" and "stun:host:3478"):
// one server must not count as two agreeing witnesses.
func dedupe(servers []stunclient.Server) []stunclient.Server {
	seen := map[string]bool{}
	out := servers[:0:0]
	for _, s := range servers {
		key := strings.ToLower(s.String())
		if !seen[key] {
			seen[key] = true
			out = append(out, s)
		}
	}
	return out
}

// fitFamily makes IPv6-literal servers work without -6: when every server
// is an IPv6 address and no family was chosen, the run uses IPv6. With -4
// they cannot be reached, which is bad usage, not a network failure.
func (r *resolved) fitFamily(explicit4 bool) error {
	var v4, v6 int
	var first6 string
	for _, s := range r.servers {
		switch a, err := netip.ParseAddr(s.Host); {
		case err != nil:
			return nil // a name may have addresses of either family
		case a.Is6():
			v6++
			if first6 == "" {
				first6 = s.Input
			}
		default:
			v4++
		}
	}
	switch {
	case v6 > 0 && r.family == stunclient.IPv4 && explicit4:
		return usageError("server %s is an IPv6 address, but -4 asks for IPv4", first6)
	case v6 > 0 && v4 == 0 && r.family == stunclient.IPv4:
		r.family = stunclient.IPv6
	case v4 > 0 && v6 == 0 && r.family == stunclient.IPv6:
		return usageError("-6 asks for IPv6, but every server is an IPv4 address")
	}
	return nil
}

// runError maps a probe failure to an exit code. A parent context that ended
// means the user interrupted; ErrNoAnswer has its own code for scripts.
func runError(parent context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted")}
	case errors.As(err, new(*stunclient.UnresolvedError)):
		// DNS is the cause, and the message says so.
		return &ExitError{Code: ExitNoAnswer, Err: err}
	case errors.Is(err, stunclient.ErrRefused):
		// Every server's host answered "port unreachable": the host is
		// online and nothing blocked the traffic.
		return &ExitError{Code: ExitNoAnswer, Err: err}
	case errors.Is(err, stunclient.ErrNoAnswer):
		return &ExitError{Code: ExitNoAnswer, Err: fmt.Errorf("%w; the host may be offline, or this traffic blocked", err)}
	default:
		return &ExitError{Code: ExitFailure, Err: err}
	}
}

// runError is runError for a run bounded by --timeout: when no server
// answered because a --timeout too short for an answer ran out, it says
// so rather than blame the network.
func (r resolved) runError(parent context.Context, err error) error {
	if why := r.timeoutTooShort(); why != "" && parent.Err() == nil && errors.Is(err, stunclient.ErrNoAnswer) {
		return &ExitError{Code: ExitNoAnswer, Err: fmt.Errorf("%w%s", err, why)}
	}
	return runError(parent, err)
}

// timeoutTooShort explains a run without answers when --timeout ran out
// and was shorter than natcheck's first retransmission interval: too short
// to expect an answer on most paths, so the timeout is the likely cause.
// It is "" otherwise.
func (r resolved) timeoutTooShort() string {
	if r.timeout >= stunclient.DefaultRTO || time.Since(r.start) < r.timeout {
		return ""
	}
	return fmt.Sprintf("; --timeout %s ran out before any server could answer (the default is %s)", r.timeout, defaultTimeout)
}

// verboseLogger writes --verbose progress lines to stderr, each marked
// "[name]" so that scripts can tell them from the one "natcheck: " line of
// an error.
func verboseLogger(d *Deps, name string) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(d.ErrOut, "["+name+"] "+format+"\n", args...)
	}
}

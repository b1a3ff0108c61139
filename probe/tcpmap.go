package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// TCPMappingOptions configure RunTCPMapping.
type TCPMappingOptions struct {
	Servers []stunclient.Server
	Family  stunclient.Family
	// Resolver looks up server names; nil means the system's resolver.
	Resolver stunclient.Resolver
	// Bind is the local address every connection uses; a non-zero port is
	// the shared port of the mapping test (each server's first binding
	// still needs a port of its own). Zero means any.
	Bind netip.AddrPort
}

// TCPMapping is the NAT's TCP mapping behaviour (RFC 4787 vocabulary, as
// for UDP): does one internal endpoint keep its mapping whatever the
// destination?
type TCPMapping struct {
	Family stunclient.Family
	// Mapping is EndpointIndependent, AddressDependent,
	// AddressAndPortDependent or nat.MappingUnknown, as Verdict.Mapping for UDP.
	Mapping nat.Mapping
	// EndpointIndependent is tri.Unknown when not tested; No may come with
	// an unknown Mapping when no second port of the server could be tried.
	EndpointIndependent tri.Bool
	Local               netip.AddrPort                // the one local port every test connection used
	Servers             []stunclient.TCPBindingResult // one plain binding per server, from fresh ports
	Tests               []stunclient.TCPBindingResult // from the shared local port
	Reason              string                        // why Mapping is unknown
	Elapsed             time.Duration
}

// RunTCPMapping asks every server for a binding over TCP at once (which
// ones answer, and their OTHER-ADDRESS), then opens, from one shared local
// port, connections to the first answering server and to other addresses:
// the server's alternate IP at the primary port and its OTHER-ADDRESS
// (RFC 5780 section 4.3 over TCP), or else another server on another IP.
// Equal mapped addresses across destinations mean endpoint-independent
// mapping. It returns ErrNoAnswer when no server answered over TCP.
func RunTCPMapping(ctx context.Context, o TCPMappingOptions) (*TCPMapping, error) {
	start := time.Now()
	if len(o.Servers) == 0 {
		return nil, errors.New("no STUN servers given")
	}
	if o.Family == 0 {
		o.Family = stunclient.IPv4
	}
	m := &TCPMapping{Family: o.Family, Mapping: nat.MappingUnknown}
	defer func() { m.Elapsed = time.Since(start) }()

	m.Servers = tcpProbeAll(ctx, o)
	var answered []stunclient.TCPBindingResult
	for _, r := range m.Servers {
		if r.OK() {
			answered = append(answered, r)
		}
	}
	if len(answered) == 0 {
		return m, tcpNoAnswer(m.Servers)
	}
	primary := answered[0]
	dests := tcpDestinations(primary, answered[1:])
	if len(dests) == 0 {
		m.Reason = "only one server address answered over TCP and it advertises no OTHER-ADDRESS"
		return m, nil
	}
	from := unspecified(o.Family)
	if o.Bind.IsValid() {
		from = o.Bind.Addr()
	}
	port := o.Bind.Port()
	if port == 0 {
		var err error
		if port, err = freeTCPPort(o.Family, from); err != nil {
			m.Reason = err.Error()
			return m, nil
		}
	}
	laddr := netip.AddrPortFrom(from, port)
	m.Local = laddr
	if !o.Bind.IsValid() {
		if src, err := tcpRouteSource(o.Family, primary.To); err == nil {
			// The socket is bound to the wildcard; say which address the
			// connections really leave from, as the UDP tests do.
			m.Local = netip.AddrPortFrom(src, port)
		}
	}
	// The primary and the other destinations are connected at once: through
	// loss, each connection set-up may wait for a SYN retransmission (1 s),
	// and doing them one after another would double that.
	m.Tests = tcpFromPort(ctx, o.Family, laddr, append([]tcpDest{{nat.TCPPrimary, primary.To}}, dests...))
	first := m.Tests[0]
	if !first.OK() {
		m.Reason = "the primary server did not answer from the shared local port: " + errString(first.Err)
		if ctx.Err() != nil {
			m.Reason = "slow path: the time limit ended the test before the primary server answered from the shared local port (raise --timeout)"
		}
		return m, nil
	}
	m.Local = first.Local
	m.judge()
	if m.Mapping == nat.MappingUnknown && ctx.Err() != nil {
		m.Reason = "slow path: the time limit ended the test before every connection was answered (raise --timeout); " + m.Reason
	}
	return m, nil
}

func tcpRouteSource(f stunclient.Family, to netip.AddrPort) (netip.Addr, error) {
	n, err := stunclient.NetOrReal(nil)
	if err != nil {
		return netip.Addr{}, err
	}
	return RouteSource(n, f, to)
}

// tcpProbeAll runs one plain TCP binding per server address, all at once,
// under the gather.Survey grace (one lost SYN is retransmitted after 1 s).
// It returns as soon as the primary (the first server in order that
// answered) is known and advertises a usable OTHER-ADDRESS, or once every
// server finished or was given up: a server still silent after the grace
// (black-holed, or accepting TCP and never replying) never costs the run's
// time limit.
func tcpProbeAll(ctx context.Context, o TCPMappingOptions) []stunclient.TCPBindingResult {
	tasks := make([]gather.Task[stunclient.TCPBindingResult], len(o.Servers))
	for i, s := range o.Servers {
		tasks[i] = func(ctx context.Context, answered func(gather.Answer)) stunclient.TCPBindingResult {
			addrs, err := s.Resolve(ctx, o.Resolver, o.Family)
			if err != nil {
				return stunclient.TCPBindingResult{Name: nat.TCPProbe, Err: err}
			}
			var laddr netip.AddrPort // the system's choice
			if o.Bind.IsValid() {
				laddr = netip.AddrPortFrom(o.Bind.Addr(), 0)
			}
			r, c := stunclient.TCPBinding(ctx, o.Family, laddr, addrs[0])
			if c != nil {
				c.Close()
			}
			r.Name = nat.TCPProbe
			if r.OK() {
				answered(gather.Answer{RTT: r.RTT})
			}
			return r
		}
	}
	rs := gather.Run(ctx, tasks, gather.Options[stunclient.TCPBindingResult]{
		Grace:  gather.Survey,
		Enough: primaryReady,
	})
	out := make([]stunclient.TCPBindingResult, len(rs))
	for i, r := range rs {
		out[i] = r.Value
		if err := r.State.Err(); err != nil && !out[i].OK() {
			out[i].Err = err
		}
	}
	return out
}

// primaryReady reports whether the primary is known (every earlier server
// finished without an answer) and needs no other server: its OTHER-ADDRESS
// gives the mapping test its destinations.
func primaryReady(rs []gather.Result[stunclient.TCPBindingResult]) bool {
	for _, r := range rs {
		if r.State == gather.Running {
			return false
		}
		if v := r.Value; v.OK() {
			o := v.Other
			return o.IsValid() && o.Addr() != v.To.Addr()
		}
	}
	return false
}

// tcpDest is one destination of the mapping test.
type tcpDest struct {
	name nat.TestName
	to   netip.AddrPort
}

// tcpDestinations picks what to compare the primary mapping with: with a
// valid OTHER-ADDRESS (another IP, RFC 5780 section 7.4), the alternate IP
// at the primary port and the OTHER-ADDRESS itself; otherwise another
// server on another IP.
func tcpDestinations(primary stunclient.TCPBindingResult, others []stunclient.TCPBindingResult) []tcpDest {
	if o := primary.Other; o.IsValid() && o.Addr() != primary.To.Addr() {
		return []tcpDest{
			{nat.TCPAltIP, netip.AddrPortFrom(o.Addr(), primary.To.Port())},
			{nat.TCPAltIPPort, o},
		}
	}
	for _, r := range others {
		if r.To.Addr() != primary.To.Addr() {
			return []tcpDest{{nat.TCPOtherServer, r.To}}
		}
	}
	return nil
}

// tcpFromPort connects to every destination at once from laddr.
func tcpFromPort(ctx context.Context, f stunclient.Family, laddr netip.AddrPort, dests []tcpDest) []stunclient.TCPBindingResult {
	out := make([]stunclient.TCPBindingResult, len(dests))
	conns := make([]net.Conn, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], conns[i] = stunclient.TCPBinding(ctx, f, laddr, d.to)
			out[i].Name = d.name
		}()
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return out
}

// judge names the mapping behaviour from the tests, never guessing: a
// missing answer leaves it unknown.
func (m *TCPMapping) judge() {
	get := func(name nat.TestName) *stunclient.TCPBindingResult {
		for i := range m.Tests {
			if m.Tests[i].Name == name {
				return &m.Tests[i]
			}
		}
		return nil
	}
	first := get(nat.TCPPrimary)
	for _, t := range m.Tests {
		if t.Err == nil && t.Local.Port() != first.Local.Port() {
			m.Reason = "the system did not keep the shared local port"
			return
		}
	}
	if other := get(nat.TCPOtherServer); other != nil {
		if !other.OK() {
			m.Reason = "the second server did not answer from the shared port: " + errString(other.Err)
			return
		}
		if other.Mapped == first.Mapped {
			m.Mapping, m.EndpointIndependent = nat.EndpointIndependent, tri.Yes
			return
		}
		m.EndpointIndependent = tri.No
		m.Reason = "mapping changes with the destination; telling address from address-and-port dependence needs a server with OTHER-ADDRESS"
		return
	}
	altIP, altPort := get(nat.TCPAltIP), get(nat.TCPAltIPPort)
	if altIP == nil || !altIP.OK() {
		m.Reason = "the server's alternate address did not answer over TCP"
		return
	}
	if altIP.Mapped == first.Mapped {
		m.Mapping, m.EndpointIndependent = nat.EndpointIndependent, tri.Yes
		return
	}
	m.EndpointIndependent = tri.No
	switch {
	case altPort == nil || !altPort.OK():
		m.Reason = "the server's OTHER-ADDRESS did not answer over TCP"
	case altPort.Mapped == altIP.Mapped:
		m.Mapping = nat.AddressDependent
	default:
		m.Mapping = nat.AddressAndPortDependent
	}
}

// freeTCPPort finds a free local port by binding a listener (with the
// reuse options, so the port can be shared at once) on ip and closing it.
func freeTCPPort(f stunclient.Family, ip netip.Addr) (uint16, error) {
	lc := net.ListenConfig{Control: stunclient.ReuseControl}
	ln, err := lc.Listen(context.Background(), f.Network("tcp"), net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free local TCP port: %w", err)
	}
	defer ln.Close()
	return stunclient.AddrPortOf(ln.Addr()).Port(), nil
}

func unspecified(f stunclient.Family) netip.Addr {
	if f == stunclient.IPv6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func errString(err error) string {
	if err == nil {
		return "no mapped address"
	}
	return err.Error()
}

func tcpNoAnswer(rs []stunclient.TCPBindingResult) error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = r.Err
	}
	if err := stunclient.AllUnresolved(errs); err != nil {
		return err
	}
	for _, r := range rs {
		if r.Err != nil {
			return fmt.Errorf("%w over TCP (%d asked; %v)", stunclient.ErrNoAnswer, len(rs), r.Err)
		}
	}
	return fmt.Errorf("%w over TCP (%d asked)", stunclient.ErrNoAnswer, len(rs))
}

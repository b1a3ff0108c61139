package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/natcheck/natcheck/rendezvous"
)

// DefaultRateLimit is the default sustained rate per source address, in
// requests per second, all its ports together; the default burst is ten
// times that (2000). Each source port (one client socket) gets a quarter
// of the rate and a tenth of the burst: 50/s, burst 200. One `natcheck
// type` run sends about 45 requests within a few hundred milliseconds, from
// six sockets, none more than about 12; the address burst lets about 40
// runs start at the same moment behind one NAT (measured in the lab:
// docs/serve.md). A lower limit would drop test replies, and silence is
// what a filtering test reads as "filtered": a tight limit on a
// behaviour-discovery server produces wrong verdicts, not only slow ones.
const DefaultRateLimit = 200

// Config describes what to listen on and how to behave.
type Config struct {
	// Addrs are the IP addresses to serve: one or two per address family.
	// The first of a family is its primary, the second its alternate.
	Addrs []netip.Addr
	// Advertise, if not empty, holds one address per Addrs entry, in the
	// same order and of the same family: the address clients reach that
	// one at, named in RESPONSE-ORIGIN and OTHER-ADDRESS (and RFC 3489's
	// SOURCE-ADDRESS and CHANGED-ADDRESS) instead of the bound one. It is
	// for a host behind a 1:1 NAT, such as a cloud VM whose interfaces
	// carry private addresses the provider maps to public ones; ports are
	// taken to be kept, as such NATs do.
	Advertise []netip.Addr
	// Port and AltPort are the primary and alternate ports, used on every
	// address, for UDP and TCP. 0 picks free ports (tests).
	Port, AltPort int
	// Workers is the number of UDP sockets per address and port, bound with
	// SO_REUSEPORT so the kernel spreads clients over them. 0: GOMAXPROCS.
	Workers int
	// Batch is the number of datagrams moved per recvmmsg/sendmmsg call;
	// 1 reads and writes one datagram per system call. 0: 32.
	Batch int
	// RateLimit is the sustained number of requests per second allowed
	// from one source address (IPv4 address or IPv6 /64), all its ports
	// together; each of its ports gets a quarter of it. 0 disables rate
	// limiting. RateBurst is the address's bucket size (0: ten times the
	// rate); each port's is a tenth of it. See limiter.
	RateLimit float64
	RateBurst int
	// NoTCP disables the TCP listeners.
	NoTCP bool
	// MaxTCPConns bounds open TCP connections (0: 1024); MaxTCPConnsPerIP
	// bounds them per source address (0: 8).
	MaxTCPConns, MaxTCPConnsPerIP int
	// TCPIdle closes a TCP connection idle this long (0: 10s).
	TCPIdle time.Duration
	// Software is sent in the SOFTWARE attribute ("" for none).
	Software string
	// Rendezvous enables the rendezvous service (package rendezvous) on
	// the UDP endpoints; RendezvousTTL (0: 2 min, at most 5 min) and
	// RendezvousMaxCodes (0: 10000) bound what it keeps.
	Rendezvous         bool
	RendezvousTTL      time.Duration
	RendezvousMaxCodes int
	// MetricsAddr, if set, is a host:port serving Prometheus text on /metrics.
	MetricsAddr string
	// Logf receives log lines (nil: discarded).
	Logf func(format string, args ...any)
}

// Bounds on Config.Workers and Config.Batch: beyond them sockets and
// buffers grow without gaining speed.
const (
	maxWorkers = 256
	maxBatch   = 256
)

// ErrSameAddress reports an alternate address equal to the primary.
var ErrSameAddress = errors.New("alternate address equals the primary address")

// ConfigError is a configuration mistake (bad usage), as opposed to a
// failure of the system.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// BindError explains why a socket could not be bound.
type BindError struct {
	Network string // udp, tcp, metrics
	Addr    string
	Err     error
}

func (e *BindError) Error() string {
	why := e.Err.Error()
	switch {
	case errors.Is(e.Err, syscall.EADDRINUSE):
		why = "port already in use"
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		why = "address not assigned to any interface of this host"
	case errors.Is(e.Err, syscall.EACCES):
		why = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return fmt.Sprintf("cannot listen on %s %s: %s", e.Network, e.Addr, why)
}
func (e *BindError) Unwrap() error { return e.Err }

// Server is a bound RFC 5780 STUN server.
type Server struct {
	cfg  Config
	fams []*servedFamily
	lim  *limiter          // shared by all families; nil without a rate limit
	rdv  *rendezvous.Store // shared by all families; nil without --rendezvous

	udpCounters []*counters
	tcpCounters *counters
	tcpOpen     atomic.Int64
	tcpAccepted atomic.Uint64
	tcpRejected atomic.Uint64

	tcpMu      sync.Mutex
	tcpClosing bool // set at shutdown: admit no more connections
	tcpConns   map[net.Conn]struct{}
	tcpPerIP   map[netip.Addr]int

	start     time.Time // origin of the monotonic clock the rate limiter reads
	metricsLn net.Listener
	wg        sync.WaitGroup

	served   atomic.Bool // Serve has been called
	stopping atomic.Bool // shutdown has begun: closed sockets are expected
	failed   chan error  // the first failure that stops the server (buffered, 1)
}

// servedFamily is one address family's endpoints and sockets.
type servedFamily struct {
	fam  family
	h    *handler
	udp  [][4]*net.UDPConn // [worker][endpoint]
	ctrs [][4]*counters    // [worker][endpoint], one per reader goroutine
	tcp  [4]*net.TCPListener
	nEps int
}

// Listen validates cfg and binds every socket, so that all errors (bad
// addresses, ports in use) surface before the server starts answering.
func Listen(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.normalise(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tcpCounters: new(counters), tcpConns: map[net.Conn]struct{}{}, tcpPerIP: map[netip.Addr]int{}, start: time.Now(),
		failed: make(chan error, 1)}
	if cfg.RateLimit > 0 {
		s.lim = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	if cfg.Rendezvous {
		s.rdv = rendezvous.NewStore(rendezvous.StoreConfig{TTL: cfg.RendezvousTTL, MaxCodes: cfg.RendezvousMaxCodes, Amplification: amplification})
	}
	for _, addrs := range groupFamilies(cfg.Addrs, cfg.Advertise) {
		sf := &servedFamily{h: &handler{lim: s.lim, software: cfg.Software, rdv: s.rdv}}
		sf.h.fam = &sf.fam
		if err := s.bindFamily(ctx, sf, addrs); err != nil {
			s.closeSockets()
			return nil, err
		}
		sf.ctrs = make([][4]*counters, len(sf.udp))
		for w := range sf.ctrs {
			for ep := 0; ep < sf.nEps; ep++ {
				sf.ctrs[w][ep] = new(counters)
				s.udpCounters = append(s.udpCounters, sf.ctrs[w][ep])
			}
		}
		s.fams = append(s.fams, sf)
	}
	if cfg.MetricsAddr != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.MetricsAddr)
		if err != nil {
			s.closeSockets()
			return nil, &BindError{Network: "metrics", Addr: cfg.MetricsAddr, Err: err}
		}
		s.metricsLn = ln
	}
	return s, nil
}

func (c *Config) normalise() error {
	if len(c.Addrs) == 0 {
		return &ConfigError{errors.New("no address to listen on")}
	}
	seen := map[netip.Addr]bool{}
	perFamily := map[bool]int{}
	for i, a := range c.Addrs {
		a = a.Unmap()
		c.Addrs[i] = a
		switch {
		case !a.IsValid():
			return &ConfigError{errors.New("invalid listen address")}
		case a.IsUnspecified():
			return &ConfigError{fmt.Errorf("cannot serve on %s: RFC 5780 needs each specific address (RESPONSE-ORIGIN, OTHER-ADDRESS)", a)}
		case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return &ConfigError{fmt.Errorf("cannot serve on %s: not a unicast address", a)}
		case a.Zone() != "":
			return &ConfigError{fmt.Errorf("cannot serve on %s: zoned (link-local) addresses are not supported", a)}
		case seen[a]:
			return &ConfigError{fmt.Errorf("%w (%s given twice)", ErrSameAddress, a)}
		}
		seen[a] = true
		perFamily[a.Is4()]++
		if perFamily[a.Is4()] > 2 {
			return &ConfigError{fmt.Errorf("at most two addresses per family (primary and alternate); got a third: %s", a)}
		}
	}
	if err := c.checkAdvertise(); err != nil {
		return err
	}
	if c.Port < 0 || c.Port > 65535 || c.AltPort < 0 || c.AltPort > 65535 {
		return &ConfigError{errors.New("ports must be between 1 and 65535")}
	}
	if c.Port != 0 && c.Port == c.AltPort {
		return &ConfigError{fmt.Errorf("alternate port equals the primary port (%d)", c.Port)}
	}
	if math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		return &ConfigError{fmt.Errorf("rate limit %v is not a number of requests per second (0 = unlimited)", c.RateLimit)}
	}
	if c.RendezvousTTL < 0 || c.RendezvousTTL > rendezvous.MaxTTL {
		return &ConfigError{fmt.Errorf("rendezvous TTL %v is out of range (at most %v)", c.RendezvousTTL, rendezvous.MaxTTL)}
	}
	if c.RendezvousMaxCodes < 0 {
		return &ConfigError{errors.New("rendezvous codes cannot be negative")}
	}
	if c.Workers > maxWorkers || c.Batch > maxBatch {
		return &ConfigError{fmt.Errorf("at most %d workers and batches of %d", maxWorkers, maxBatch)}
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.RateBurst <= 0 {
		c.RateBurst = int(10 * c.RateLimit)
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = 1024
	}
	if c.MaxTCPConnsPerIP <= 0 {
		c.MaxTCPConnsPerIP = 8
	}
	if c.TCPIdle <= 0 {
		c.TCPIdle = 10 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// checkAdvertise validates Advertise against Addrs (already checked):
// one each, same family, unicast, and two different ones per family, since
// an OTHER-ADDRESS naming the primary's IP makes clients misjudge
// filtering. An empty Advertise becomes Addrs itself.
func (c *Config) checkAdvertise() error {
	if len(c.Advertise) == 0 {
		c.Advertise = slices.Clone(c.Addrs)
		return nil
	}
	if len(c.Advertise) != len(c.Addrs) {
		return &ConfigError{fmt.Errorf("Advertise has %d addresses and Addrs %d: give one for each, in the same order", len(c.Advertise), len(c.Addrs))}
	}
	c.Advertise = slices.Clone(c.Advertise)
	seen := map[netip.Addr]netip.Addr{}
	for i, a := range c.Advertise {
		a = a.Unmap()
		c.Advertise[i] = a
		l := c.Addrs[i]
		switch {
		case !a.IsValid():
			return &ConfigError{errors.New("invalid advertised address")}
		case a.Is4() != l.Is4():
			return &ConfigError{fmt.Errorf("cannot advertise %s for %s: not the same address family", a, l)}
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return &ConfigError{fmt.Errorf("cannot advertise %s: not a unicast address", a)}
		case a.Zone() != "":
			return &ConfigError{fmt.Errorf("cannot advertise %s: zoned (link-local) addresses are not supported", a)}
		}
		if prev, dup := seen[a]; dup {
			return &ConfigError{fmt.Errorf("%s and %s are both advertised as %s: an alternate address needs its own", prev, l, a)}
		}
		seen[a] = l
	}
	return nil
}

// served is a listen address and the address it is advertised as.
type served struct{ listen, adv netip.Addr }

// groupFamilies pairs each address with its advertised one (Advertise,
// filled by normalise) and splits them into IPv4 and IPv6 groups, keeping
// order.
func groupFamilies(addrs, adv []netip.Addr) [][]served {
	var v4, v6 []served
	for i, a := range addrs {
		if a.Is4() {
			v4 = append(v4, served{a, adv[i]})
		} else {
			v6 = append(v6, served{a, adv[i]})
		}
	}
	var out [][]served
	for _, g := range [][]served{v4, v6} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// bindFamily binds the 2 or 4 endpoints of one family. With port 0 the
// kernel picks the ports on the primary address; if the alternate address
// has them taken, it tries again with new ones.
func (s *Server) bindFamily(ctx context.Context, sf *servedFamily, addrs []served) error {
	sf.fam.twoIP = len(addrs) == 2
	sf.nEps = 2 * len(addrs)
	var err error
	for try := 0; try < 20; try++ {
		err = s.tryBindFamily(ctx, sf, addrs)
		if err == nil || s.cfg.Port != 0 && s.cfg.AltPort != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
	return err
}

func (s *Server) tryBindFamily(ctx context.Context, sf *servedFamily, addrs []served) (err error) {
	sf.udp = make([][4]*net.UDPConn, s.cfg.Workers)
	sf.tcp = [4]*net.TCPListener{}
	defer func() {
		if err != nil {
			sf.close()
		}
	}()
	ports := [2]int{s.cfg.Port, s.cfg.AltPort}
	for ep := 0; ep < sf.nEps; ep++ {
		ip := addrs[ep>>1].listen
		port := ports[ep&epAltPort]
		ap := netip.AddrPortFrom(ip, uint16(port))
		conns, err := bindUDP(ctx, ap, s.cfg.Workers)
		if err != nil {
			return err
		}
		for w, c := range conns {
			sf.udp[w][ep] = c
		}
		bound := conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
		ports[ep&epAltPort] = int(bound.Port()) // fixes a port chosen by the kernel
		sf.fam.ep[ep] = netip.AddrPortFrom(ip, bound.Port())
		sf.fam.adv[ep] = netip.AddrPortFrom(addrs[ep>>1].adv, bound.Port())
		if ep == 0 && ports[1] == ports[0] {
			return &ConfigError{fmt.Errorf("alternate port equals the primary port (%d)", ports[0])}
		}
		if !s.cfg.NoTCP {
			ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", sf.fam.ep[ep].String())
			if err != nil {
				return &BindError{Network: "tcp", Addr: sf.fam.ep[ep].String(), Err: unwrapSyscall(err)}
			}
			sf.tcp[ep] = ln.(*net.TCPListener)
		}
	}
	return nil
}

// bindUDP binds n sockets to ap with SO_REUSEPORT. A first bind without it
// makes a port held by anyone (even another natcheck) an error instead of
// a silent share.
func bindUDP(ctx context.Context, ap netip.AddrPort, n int) ([]*net.UDPConn, error) {
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	probe, err := (&net.ListenConfig{}).ListenPacket(ctx, network, ap.String())
	if err != nil {
		return nil, &BindError{Network: "udp", Addr: ap.String(), Err: unwrapSyscall(err)}
	}
	if ap.Port() == 0 {
		ap = probe.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	probe.Close()
	lc := net.ListenConfig{Control: reusePort}
	conns := make([]*net.UDPConn, 0, n)
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(ctx, network, ap.String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, &BindError{Network: "udp", Addr: ap.String(), Err: unwrapSyscall(err)}
		}
		c := pc.(*net.UDPConn)
		// A deep receive queue absorbs bursts while a worker is busy.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		conns = append(conns, c)
	}
	return conns, nil
}

func unwrapSyscall(err error) error {
	var se *net.OpError
	if errors.As(err, &se) {
		var sys *os.SyscallError
		if errors.As(se.Err, &sys) {
			return sys.Err
		}
		return se.Err
	}
	return err
}

func (sf *servedFamily) close() {
	for _, w := range sf.udp {
		for _, c := range w {
			if c != nil {
				c.Close()
			}
		}
	}
	for _, ln := range sf.tcp {
		if ln != nil {
			ln.Close()
		}
	}
}

func (s *Server) closeSockets() {
	for _, sf := range s.fams {
		sf.close()
	}
	if s.metricsLn != nil {
		s.metricsLn.Close()
	}
}

// Endpoints lists the served UDP (and, unless disabled, TCP) address/port
// pairs: per family primary:port, primary:alt-port, then the alternate IP's.
func (s *Server) Endpoints() []netip.AddrPort {
	var out []netip.AddrPort
	for _, sf := range s.fams {
		out = append(out, sf.fam.ep[:sf.nEps]...)
	}
	return out
}

// MetricsAddr is the bound metrics address, or nil.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// ErrServed is returned by a second call of Serve: a Server serves once.
var ErrServed = errors.New("server: Serve called more than once")

// Serve answers requests until ctx is cancelled or the server fails, then
// closes every socket and connection and waits for its goroutines, so the
// counters are final when it returns. It returns nil on a shutdown by ctx,
// and the error that stopped it otherwise: the metrics server failed, or a
// socket stopped working (closed by anything but shutdown).
func (s *Server) Serve(ctx context.Context) error {
	if s.served.Swap(true) {
		return ErrServed
	}
	for _, sf := range s.fams {
		for w := range sf.udp {
			for ep := 0; ep < sf.nEps; ep++ {
				c := sf.ctrs[w][ep]
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.udpLoop(sf, w, ep, c)
				}()
			}
		}
		for ep, ln := range sf.tcp {
			if ln == nil {
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.acceptLoop(sf, ep, ln)
			}()
		}
	}
	var hs *http.Server
	if s.metricsLn != nil {
		hs = &http.Server{Handler: s.metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := hs.Serve(s.metricsLn); !errors.Is(err, http.ErrServerClosed) && !s.stopping.Load() {
				s.fail(fmt.Errorf("metrics server on %s: %w", s.metricsLn.Addr(), err))
			}
		}()
	}
	s.cfg.Logf("serving STUN on %s", s.describe())
	var err error
	select {
	case <-ctx.Done():
		s.cfg.Logf("shutting down")
	case err = <-s.failed:
		s.cfg.Logf("shutting down: %v", err)
	}
	s.stopping.Store(true)
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if hs.Shutdown(sctx) != nil {
			_ = hs.Close() // a scrape still running after a second
		}
		cancel()
	}
	s.closeSockets()
	s.tcpMu.Lock()
	s.tcpClosing = true
	for c := range s.tcpConns {
		c.Close()
	}
	s.tcpMu.Unlock()
	s.wg.Wait()
	return err
}

// fail stops the server with err; the first failure wins.
func (s *Server) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

// socketGone handles a socket that reports itself closed: expected at
// shutdown, a failure of the server otherwise.
func (s *Server) socketGone(network string, ep netip.AddrPort, err error) {
	if !s.stopping.Load() {
		s.fail(fmt.Errorf("%s socket %s stopped working: %w", network, ep, err))
	}
}

func (s *Server) describe() string {
	d := ""
	for _, sf := range s.fams {
		for i, ep := range sf.fam.ep[:sf.nEps] {
			if d != "" {
				d += ", "
			}
			d += ep.String()
			if adv := sf.fam.adv[i]; adv != ep {
				d += " as " + adv.String()
			}
		}
	}
	proto := "udp+tcp"
	if s.cfg.NoTCP {
		proto = "udp"
	}
	if s.rdv != nil {
		proto += ", rendezvous on udp"
	}
	return fmt.Sprintf("%s (%s, %d workers)", d, proto, s.cfg.Workers)
}

// now reads the monotonic clock, so wall-clock steps cannot freeze or
// refill rate-limit buckets. It is never 0 (0 marks an empty bucket).
func (s *Server) now() int64 { return int64(time.Since(s.start)) + 1 }

// isClosed tells a socket closed by shutdown from a real failure.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

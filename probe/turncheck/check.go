package turncheck

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined with HMAC-SHA1
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/turn/v4"
)

// DefaultPackets is how many packets the data step sends each way.
const DefaultPackets = 20

// TLSConfig is the client configuration for a turns: server named host:
// verified against RootCAs (nil: the system's), or not at all with
// Insecure.
func (o Options) TLSConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: o.RootCAs, InsecureSkipVerify: o.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // --insecure asks for it
}

// Options are the check's settings, shared by every server.
type Options struct {
	User, Password string // long-term credentials (for REST credentials, made by RESTCredentials)
	REST           bool   // the credentials come from a shared secret: a 401 may mean they expired
	RootCAs        *x509.CertPool
	Insecure       bool // skip certificate verification
	Packets        int  // per direction; 0 means DefaultPackets
	// Resolver looks up server names; nil means the system's.
	Resolver stunclient.Resolver
}

// RESTCredentials makes TURN REST API credentials (coturn's use-auth-secret):
// the user name is "<expiry>:<user>" (or "<expiry>" without a user), the
// password base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Run checks every server at once, as tasks of one gather run: a server
// that has not answered when the Survey grace after another's answer ends
// is given up as unreachable. ctx bounds the whole run. A UDP server
// that got no answer has its cause completed with what the TCP and TLS
// URIs of the same host found (CompareTransports).
func Run(ctx context.Context, servers []URI, o Options) []Result {
	tasks := make([]gather.Task[Result], len(servers))
	for i, u := range servers {
		tasks[i] = func(tctx context.Context, answered func(gather.Answer)) Result {
			return Check(tctx, u, o, func(rtt time.Duration) { answered(gather.Answer{RTT: rtt}) })
		}
	}
	rs := gather.Run(ctx, tasks, gather.Options[Result]{Grace: gather.Survey})
	out := make([]Result, len(rs))
	for i, r := range rs {
		out[i] = r.Value
	}
	CompareTransports(out)
	return out
}

// side is one allocation: its connection to the server, pion's client and
// the relayed socket.
type side struct {
	conn   net.PacketConn
	tap    *tap
	client *turn.Client
	relay  net.PacketConn
	binds  *bindLog
	stop   func() bool
}

func (s *side) close() {
	if s.stop != nil {
		s.stop()
	}
	if s.client != nil {
		s.client.Close()
	}
	if s.conn != nil {
		s.conn.Close()
	}
}

type checker struct {
	ctx    context.Context
	u      URI
	o      Options
	r      *Result
	server netip.AddrPort
	// skew is how far the server's clock is ahead of this host's, when
	// its nonce tells (skewKnown).
	skew, skewPrecision time.Duration
	skewKnown           bool
}

func (c *checker) step(n StepName, ok bool, d time.Duration, err error) {
	c.r.Steps = append(c.r.Steps, Step{Name: n, OK: ok, Elapsed: d, Err: err})
}

// fail records the failure f and its cause.
func (c *checker) fail(f Failure) {
	f.Transport, f.REST = c.u.Transport, c.o.REST
	if f.Realm == "" {
		f.Realm = c.r.Realm
	}
	f.Server = c.server.Addr()
	if !f.Relayed.IsValid() && c.r.Relayed.IsValid() {
		f.Relayed = c.r.Relayed.Addr()
	}
	if c.ctx.Err() != nil && context.Cause(c.ctx) != context.DeadlineExceeded && !f.Silent {
		f.Silent = true
	}
	if c.o.REST {
		f.Now = time.Now()
		f.Expiry, _ = RESTExpiry(c.o.User)
		f.ServerSkew, f.SkewPrecision, f.SkewKnown = c.skew, c.skewPrecision, c.skewKnown
	}
	c.r.FailedStep, c.r.ErrorCode, c.r.silent = f.Step, f.Code, f.Silent
	c.r.Verdict, c.r.Cause = Explain(f)
	c.r.Err = f.Err
	if c.r.Err == nil {
		c.r.Err = errors.New(c.r.Cause)
	}
	if s := c.r.Step(f.Step); s == nil {
		c.step(f.Step, false, 0, c.r.Err)
	}
}

// Check tests one server; answered is called once it first answers, with
// the round trip. ctx bounds the check; on its end the allocations made so
// far are still deleted.
func Check(ctx context.Context, u URI, o Options, answered func(time.Duration)) (res Result) {
	start := time.Now()
	res = Result{URI: u}
	defer func() { res.Elapsed = time.Since(start) }()
	if o.Packets <= 0 {
		o.Packets = DefaultPackets
	}
	c := &checker{ctx: ctx, u: u, o: o, r: &res}

	addr, err := resolve(ctx, o.Resolver, u.Host)
	if err != nil {
		c.fail(Failure{Step: StepReach, Err: err})
		return res
	}
	c.server = netip.AddrPortFrom(addr, u.Port)
	res.Address = c.server

	a, ok := c.open(answered, true)
	if a != nil {
		defer c.release(a)
	}
	if !ok {
		return res
	}
	if !c.allocate(a, true) {
		return res
	}
	b, ok := c.open(nil, false)
	if b != nil {
		defer c.release(b)
	}
	if !ok || !c.allocate(b, false) {
		return res
	}
	relA, relB := a.relay.LocalAddr(), b.relay.LocalAddr()

	t0 := time.Now()
	for _, p := range []struct {
		from *side
		to   net.Addr
	}{{a, relB}, {b, relA}} {
		if !c.permit(p.from, p.to, t0) {
			return res
		}
	}
	c.step(StepPermission, true, time.Since(t0), nil)

	if !c.channelBind(a, b, relA, relB) {
		return res
	}
	if c.data(a, b, relA, relB) {
		c.refresh(a, b)
	}
	return res
}

// open connects one side: the socket, TCP and TLS for tcp/tls, and pion's
// client. first records reach and tls steps.
func (c *checker) open(answered func(time.Duration), first bool) (*side, bool) {
	s := &side{binds: newBindLog()}
	t0 := time.Now()
	switch c.u.Transport {
	case UDP:
		pc, err := net.ListenPacket(c.network("udp"), ":0")
		if err != nil {
			c.fail(Failure{Step: StepReach, Err: err})
			return nil, false
		}
		s.conn = pc
	default:
		d := net.Dialer{}
		conn, err := d.DialContext(c.ctx, c.network("tcp"), c.server.String())
		if err != nil {
			c.fail(Failure{Step: StepReach, Silent: isTimeout(err) || c.ctx.Err() != nil, Err: err})
			return nil, false
		}
		if first {
			c.step(StepReach, true, time.Since(t0), nil)
			if answered != nil {
				answered(time.Since(t0))
			}
		}
		if c.u.Transport == TLS {
			t1 := time.Now()
			tc := tls.Client(conn, c.o.TLSConfig(c.u.Host))
			if err := tc.HandshakeContext(c.ctx); err != nil {
				conn.Close()
				c.fail(Failure{Step: StepTLS, TLS: ClassifyTLS(err), Silent: c.ctx.Err() != nil, Err: err})
				return nil, false
			}
			if first {
				c.step(StepTLS, true, time.Since(t1), nil)
			}
			conn = tc
		}
		s.conn = turn.NewSTUNConn(conn)
	}
	s.tap = newTap(s.conn)
	cfg := &turn.ClientConfig{
		TURNServerAddr: c.server.String(),
		Username:       c.o.User,
		Password:       c.o.Password,
		Software:       "natcheck",
		Conn:           s.tap,
		LoggerFactory:  s.binds,
	}
	if c.server.Addr().Is6() {
		n, err := stdnet.NewNet()
		if err != nil {
			s.close()
			c.fail(Failure{Step: StepReach, Err: err})
			return nil, false
		}
		cfg.Net = literalNet{n}
	}
	cl, err := turn.NewClient(cfg)
	if err != nil {
		s.close()
		c.fail(Failure{Step: StepReach, Err: err})
		return nil, false
	}
	s.client = cl
	if err := cl.Listen(); err != nil {
		s.close()
		c.fail(Failure{Step: StepReach, Err: err})
		return nil, false
	}
	// pion's transactions know no context: closing the client ends them
	// when ctx does; the socket stays open for the deletion.
	s.stop = context.AfterFunc(c.ctx, cl.Close)
	return s, true
}

// allocate authenticates and allocates on s; for the first side it also
// records reach (UDP), auth and allocate, the realm, SOFTWARE, the
// reflexive and relayed addresses and the lifetime.
func (c *checker) allocate(s *side, first bool) bool {
	t0 := time.Now()
	relay, err := s.client.Allocate()
	if code := stunCode(err); code == 438 {
		relay, err = s.client.Allocate() // stale nonce: retry once, as clients must
	}
	rs := s.tap.since(t0)
	var challenge, final *response
	for i := range rs {
		if rs[i].method != stun.MethodAllocate {
			continue
		}
		if challenge == nil && rs[i].code == 401 {
			challenge = &rs[i]
		} else {
			final = &rs[i]
		}
	}
	for _, r := range rs {
		if t, p, ok := nonceClock(r.nonce, r.at); ok && !c.skewKnown {
			c.skew, c.skewPrecision, c.skewKnown = t.Sub(r.at), p, true
		}
	}
	if len(rs) > 0 && first {
		if rs[0].software != "" {
			c.r.Software = rs[0].software
		}
		if c.u.Transport == UDP {
			c.step(StepReach, true, rs[0].at.Sub(t0), nil)
		}
	}
	if challenge != nil && first {
		c.r.Realm = challenge.realm
		c.step(StepAuth, true, challenge.at.Sub(t0), nil)
	}
	if err != nil {
		silent := len(rs) == 0
		f := Failure{Step: StepAllocate, Silent: silent, Err: err}
		if final != nil {
			f.Code = final.code
		} else if code := stunCode(err); code != 0 {
			f.Code = code
		} else if challenge != nil && !silent && len(rs) == 1 {
			f.Silent = true // challenged, then silence
		}
		switch {
		case silent && c.u.Transport == UDP:
			f.Step = StepReach
		case silent:
			f.Step = StepAuth
		case f.Code == 401 || f.Code == 431 || f.Code == 438 || (f.Code == 400 && challenge != nil):
			f.Step = StepAuth
			if s := c.r.Step(StepAuth); s != nil {
				s.OK, s.Err = false, err
			}
		case !first:
			// The second allocation (B, the peer of the data test) was
			// refused: a step of its own, after A's that succeeded.
			c.step(StepAllocate, false, time.Since(t0), err)
		}
		c.fail(f)
		return false
	}
	s.relay = relay
	if !first {
		return true
	}
	if challenge == nil {
		c.step(StepAuth, true, 0, nil) // the server allocated without asking for credentials
	}
	since := t0
	if challenge != nil {
		since = challenge.at
	}
	if final != nil {
		c.r.Reflexive = final.mapped
		c.step(StepAllocate, true, final.at.Sub(since), nil)
	} else {
		c.step(StepAllocate, true, time.Since(since), nil)
	}
	if ua, ok := relay.LocalAddr().(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ua.IP); ok {
			c.r.Relayed = netip.AddrPortFrom(ip.Unmap(), uint16(ua.Port))
		}
	}
	if c.r.Realm == "" {
		c.r.Realm = s.client.Realm().String()
	}
	if final != nil {
		c.r.Lifetime = final.lifetime
	}
	if PrivateRelay(c.server.Addr(), c.r.Relayed.Addr()) {
		st := c.r.Step(StepAllocate)
		st.OK = false
		c.fail(Failure{Step: StepAllocate, Relayed: c.r.Relayed.Addr()})
		st.Err = c.r.Err
		return false
	}
	return true
}

// permit asks for a permission for peer on s.
func (c *checker) permit(s *side, peer net.Addr, t0 time.Time) bool {
	err := s.client.CreatePermission(peer)
	if err != nil && stunCode(err) == 0 && c.ctx.Err() == nil {
		err = s.client.CreatePermission(peer) // a stale nonce comes back as "try again"
	}
	if err == nil {
		return true
	}
	f := Failure{Step: StepPermission, Code: stunCode(err), Err: err}
	if f.Code == 0 {
		for _, r := range s.tap.since(t0) {
			if r.method == stun.MethodCreatePermission && r.code != 0 {
				f.Code = r.code
			}
		}
		if f.Code == 0 {
			f.Silent = true
		}
	}
	c.step(StepPermission, false, time.Since(t0), err)
	c.fail(f)
	return false
}

// warmup marks the packets that start the channel bindings.
var warmup = []byte("natcheck warm-up")

// channelBind sends one packet each way (over Send indications), which
// makes pion bind a channel to the peer, and waits for both bindings.
func (c *checker) channelBind(a, b *side, relA, relB net.Addr) bool {
	t0 := time.Now()
	for _, p := range []struct {
		from *side
		to   net.Addr
	}{{a, relB}, {b, relA}} {
		if _, err := p.from.relay.WriteTo(warmup, p.to); err != nil {
			c.step(StepChannelBind, false, time.Since(t0), err)
			c.fail(Failure{Step: StepChannelBind, Code: stunCode(err), Err: err})
			return false
		}
	}
	for _, s := range []*side{a, b} {
		select {
		case <-s.binds.done:
		case <-c.ctx.Done():
		}
		s.binds.mu.Lock()
		ok, msg := s.binds.ok, s.binds.err
		s.binds.mu.Unlock()
		if !ok {
			f := Failure{Step: StepChannelBind, Silent: msg == "", Err: errors.New(msg)}
			if msg == "" {
				f.Err = errors.New("no answer to ChannelBind")
			}
			for _, r := range s.tap.since(t0) {
				if r.method == stun.MethodChannelBind && r.code != 0 {
					f.Code, f.Silent = r.code, false
				}
			}
			c.step(StepChannelBind, false, time.Since(t0), f.Err)
			c.fail(f)
			return false
		}
	}
	c.step(StepChannelBind, true, time.Since(t0), nil)
	return true
}

const magic = "NCK1"

// data sends N packets from A through the relay to B, which echoes each
// back: loss, round trip and jitter.
func (c *checker) data(a, b *side, relA, relB net.Addr) bool {
	n := c.o.Packets
	t0 := time.Now()
	sent := make([]time.Time, n)
	rtts := make([]time.Duration, n)
	var mu sync.Mutex
	forwarded, received := 0, 0
	allBack := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // B: echo
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			k, _, err := b.relay.ReadFrom(buf)
			if err != nil {
				return
			}
			if k == 8 && string(buf[:4]) == magic {
				mu.Lock()
				forwarded++
				mu.Unlock()
				_, _ = b.relay.WriteTo(buf[:k], relA)
			}
		}
	}()
	go func() { // A: the echoes
		defer wg.Done()
		buf := make([]byte, 1500)
		seen := make([]bool, n)
		for {
			k, _, err := a.relay.ReadFrom(buf)
			if err != nil {
				return
			}
			if k != 8 || string(buf[:4]) != magic {
				continue
			}
			i := int(binary.BigEndian.Uint32(buf[4:8]))
			mu.Lock()
			if i < n && !seen[i] && !sent[i].IsZero() {
				seen[i] = true
				rtts[i] = time.Since(sent[i])
				received++
				if received == n {
					close(allBack)
				}
			}
			mu.Unlock()
		}
	}()
	pkt := make([]byte, 8)
	copy(pkt, magic)
	tick := time.NewTicker(5 * time.Millisecond)
	for i := 0; i < n && c.ctx.Err() == nil; i++ {
		binary.BigEndian.PutUint32(pkt[4:], uint32(i))
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		_, _ = a.relay.WriteTo(pkt, relB)
		<-tick.C
	}
	tick.Stop()
	wait := time.NewTimer(time.Second)
	select {
	case <-allBack:
	case <-wait.C:
	case <-c.ctx.Done():
	}
	wait.Stop()
	// Unblock the readers.
	_ = a.relay.SetReadDeadline(time.Now())
	_ = b.relay.SetReadDeadline(time.Now())
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	p := &Packets{Sent: n, Forwarded: forwarded, Received: received}
	var got []time.Duration
	for i, s := range sent {
		if s.IsZero() {
			p.Sent = i
			break
		}
		if rtts[i] > 0 {
			got = append(got, rtts[i])
		}
	}
	if p.Sent > 0 {
		p.Loss = 1 - float64(received)/float64(p.Sent)
	}
	p.RTT, p.Jitter = rttStats(got)
	c.r.Packets = p
	if received == 0 {
		err := fmt.Errorf("0 of %d packets came back (%d reached the other allocation)", p.Sent, forwarded)
		c.step(StepData, false, time.Since(t0), err)
		c.fail(Failure{Step: StepData, Err: err})
		return false
	}
	c.step(StepData, true, time.Since(t0), nil)
	c.r.Verdict = Works
	return true
}

// rttStats is the median round trip and the mean difference between
// consecutive round trips (jitter), in sending order.
func rttStats(rtts []time.Duration) (median, jitter time.Duration) {
	if len(rtts) == 0 {
		return 0, 0
	}
	var sum time.Duration
	for i := 1; i < len(rtts); i++ {
		d := rtts[i] - rtts[i-1]
		sum += max(d, -d)
	}
	if len(rtts) > 1 {
		jitter = sum / time.Duration(len(rtts)-1)
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	if len(s)%2 == 1 {
		median = s[len(s)/2]
	} else {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, jitter
}

// release deletes s's allocation (a Refresh with lifetime 0) and waits a
// little for the server's answer, then closes the connection. It records
// the delete step for the first side's result.
func (c *checker) release(s *side) {
	defer s.close()
	if s.relay == nil {
		return
	}
	t0 := time.Now()
	err := s.relay.Close()
	if err == nil {
		if r, ok := s.tap.wait(stun.MethodRefresh, t0, 500*time.Millisecond); !ok {
			err = errors.New("no answer to the deletion: the allocation expires by itself at the end of its lifetime")
		} else if !r.success {
			err = fmt.Errorf("the server answered the deletion with error %d", r.code)
		}
	}
	if c.r.Step(StepDelete) == nil {
		c.step(StepDelete, err == nil, time.Since(t0), err)
	} else if err != nil {
		st := c.r.Step(StepDelete)
		st.OK, st.Err = false, err
	}
}

func stunCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// network is "udp4" or "tcp4", "udp6" or "tcp6" for the server's family.
func (c *checker) network(proto string) string {
	if c.server.Addr().Is6() {
		return proto + "6"
	}
	return proto + "4"
}

// literalNet is the network of pion's client for an IPv6 server: pion
// resolves the server's address as "udp4", which refuses an IPv6
// literal; the address is already resolved, so any family will do.
type literalNet struct{ *stdnet.Net }

func (n literalNet) ResolveUDPAddr(_, address string) (*net.UDPAddr, error) {
	return n.Net.ResolveUDPAddr("udp", address)
}

// resolve looks host up: an IP literal of either family as it is, a name
// to its IPv4 address (natcheck does not pick between a name's families:
// give an IPv6 server as a literal, turn:[2001:db8::1]).
func resolve(ctx context.Context, res stunclient.Resolver, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("%s: link-local addresses with a zone are not supported", host)
		}
		return a.Unmap(), nil
	}
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("cannot resolve %s: no IPv4 address", host)
	}
	return addrs[0].Unmap(), nil
}

package stunclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

// ErrNoResponse means a transaction ended without a valid reply.
var ErrNoResponse = errors.New("no response")

// ErrRefused means the server's host answered with ICMP port unreachable:
// nothing listens on that port. An error that is ErrRefused is also
// ErrNoResponse, so that a caller treating silence as "no answer" treats a
// refusal alike, only sooner. Only Linux tells which destination refused
// (IP_RECVERR); elsewhere a closed port reads as silence.
var ErrRefused = errors.New("refused (ICMP port unreachable): no STUN server on that port")

// refusedError is a transaction refused by its destination.
type refusedError struct{ to netip.AddrPort }

func (e *refusedError) Error() string { return fmt.Sprintf("%s: %v", e.to, ErrRefused) }

func (e *refusedError) Is(target error) bool { return target == ErrRefused || target == ErrNoResponse }

// ErrNoAnswer means no STUN server answered: the host is offline, UDP is
// blocked, or every server named is dead.
// It is shared by every prober.
var ErrNoAnswer = errors.New("no STUN server answered")

// Default retransmission parameters. RFC 8489 section 6.2.1 suggests an
// initial RTO of 500 ms for unknown paths; natcheck starts at 250 ms because
// a one-shot diagnostic gains more from recovering a lost datagram quickly
// than it costs in duplicate packets, and a late answer to the first
// transmission still matches (retransmissions reuse the transaction ID).
const (
	DefaultRTO      = 250 * time.Millisecond
	DefaultAttempts = 7 // Rc of RFC 8489
	maxDatagram     = 1500
)

// Request describes one STUN Binding transaction.
type Request struct {
	To         netip.AddrPort
	Change     nat.ChangeFlags           // CHANGE-REQUEST flags, 0 for none
	AcceptFrom func(netip.AddrPort) bool // sources allowed to answer; nil means only To
	RTO        time.Duration             // initial retransmission timeout, doubled each time
	Attempts   int                       // transmissions at most
	LastWait   time.Duration             // wait after the last transmission (default 16 x RTO, RFC 8489 Rm)
}

// Response is a valid reply, decoded. Absent attributes are zero values.
type Response struct {
	From           netip.AddrPort // where the reply really came from
	RTT            time.Duration  // time since the transmission it answers
	RTTExact       bool           // false when a retransmission made the RTT ambiguous (Karn)
	Attempts       int            // transmissions made
	XORMapped      netip.AddrPort
	Mapped         netip.AddrPort
	ResponseOrigin netip.AddrPort
	OtherAddress   netip.AddrPort
	ChangedAddress netip.AddrPort // RFC 3489 CHANGED-ADDRESS
	Software       string
	ErrorCode      int // 0 for a success response
	ErrorReason    string
}

// PublicAddr is the mapped address the reply reports, preferring
// XOR-MAPPED-ADDRESS, which NAT ALGs cannot rewrite.
func (r Response) PublicAddr() netip.AddrPort { return nat.MappedAddress(r.XORMapped, r.Mapped) }

// Conn is one UDP socket on which many transactions run at once. A reader
// goroutine routes each reply to its transaction by ID and source address;
// anything else is counted and dropped.
type Conn struct {
	pc    net.PacketConn
	local netip.AddrPort

	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]*transaction

	// icmp reads the ICMP errors queued on the socket (Linux), nil when
	// they cannot be read.
	icmp func(refused func(netip.AddrPort))

	ignored   atomic.Int64 // datagrams that matched no transaction or were malformed
	done      chan struct{}
	closeOnce sync.Once // Close runs from the caller and from the context watcher
	cause     error     // why Close ran: the context's error, or nil for the caller's Close
}

type transaction struct {
	accept  func(netip.AddrPort) bool
	replies chan Received
	to      netip.AddrPort // where Do sent the request; zero for Expect
	refused chan struct{}  // ICMP port unreachable from to; nil for Expect
}

// Received is one reply as the reader goroutine got it: the decoded
// message, its source and when it was read.
type Received struct {
	Msg  *stun.Message
	From netip.AddrPort
	At   time.Time
}

// Listen opens a UDP socket of family f on laddr ("" for any address and a
// free port) through n, which is the real network or a simulated one.
func Listen(ctx context.Context, n transport.Net, f Family, laddr string) (*Conn, error) {
	if laddr == "" {
		laddr = ":0"
	}
	pc, err := n.ListenPacket(f.Network("udp"), laddr)
	if err != nil {
		return nil, fmt.Errorf("open %s UDP socket: %w", f, err)
	}
	c := &Conn{
		pc:      pc,
		local:   AddrPortOf(pc.LocalAddr()),
		pending: make(map[[stun.TransactionIDSize]byte]*transaction),
		done:    make(chan struct{}),
	}
	c.icmp = icmpErrors(pc)
	go c.readLoop()
	go func() {
		select {
		case <-ctx.Done():
			c.closeBecause(ctx.Err())
		case <-c.done:
		}
	}()
	return c, nil
}

// NetOrReal is n, or the real network when n is nil (vnet in tests,
// stdnet in runs).
func NetOrReal(n transport.Net) (transport.Net, error) {
	if n != nil {
		return n, nil
	}
	s, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// LocalAddr is the socket's bound address (often the wildcard address).
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Ignored counts datagrams dropped as unmatched, spoofed or malformed.
func (c *Conn) Ignored() int64 { return c.ignored.Load() }

// Close closes the socket; transactions in progress end with an error.
func (c *Conn) Close() error { return c.closeBecause(nil) }

// closeBecause closes the socket and records why. A transaction that ends
// because the socket's context ended reports the context's error, not a
// closed socket: its own context, a child, may learn of the end a moment
// later than the socket does.
func (c *Conn) closeBecause(cause error) error {
	var err error
	c.closeOnce.Do(func() {
		c.cause = cause
		close(c.done)
		err = c.pc.Close()
	})
	return err
}

// closedErr is the error of a transaction cut short by Close.
func (c *Conn) closedErr() error {
	if c.cause != nil {
		return c.cause
	}
	return net.ErrClosed
}

func (c *Conn) readLoop() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			if isClosed(err) || c.closed() {
				return
			}
			// e.g. ICMP errors surfacing on some platforms; on Linux
			// the error queue says which destination refused.
			if c.icmp != nil {
				c.icmp(c.refuse)
			}
			continue
		}
		c.dispatch(buf[:n], AddrPortOf(from), time.Now())
	}
}

// refuse ends the pending transactions sent to to: its host answered
// with ICMP port unreachable.
func (c *Conn) refuse(to netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.pending {
		if t.refused != nil && t.to == to {
			select {
			case t.refused <- struct{}{}:
			default:
			}
		}
	}
}

func (c *Conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// dispatch decodes one datagram and hands it to its transaction. Anything
// that is not a well-formed Binding response to a pending transaction from
// an accepted source is dropped: late replies, spoofs and garbage alike.
func (c *Conn) dispatch(b []byte, from netip.AddrPort, at time.Time) {
	msg, ok := decodeResponse(b)
	if !ok {
		c.ignored.Add(1)
		return
	}
	c.mu.Lock()
	t := c.pending[msg.TransactionID]
	c.mu.Unlock()
	if t == nil || !t.accept(from) {
		c.ignored.Add(1)
		return
	}
	select {
	case t.replies <- Received{Msg: msg, From: from, At: at}:
	default: // a duplicate answer to a retransmission: the first one counts
	}
}

// decodeResponse accepts only Binding success and error responses.
func decodeResponse(b []byte) (*stun.Message, bool) {
	if !stun.IsMessage(b) {
		return nil, false
	}
	msg := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := msg.Decode(); err != nil {
		return nil, false
	}
	if msg.Type.Method != stun.MethodBinding {
		return nil, false
	}
	if msg.Type.Class != stun.ClassSuccessResponse && msg.Type.Class != stun.ClassErrorResponse {
		return nil, false
	}
	// A FINGERPRINT that is present must be right; it is optional in replies.
	if msg.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(msg) != nil {
		return nil, false
	}
	return msg, true
}

// Do runs one transaction: it sends the request, retransmits with a doubling
// RTO, and returns the first valid reply. It returns ErrNoResponse when the
// attempts run out, ErrRefused (which is also ErrNoResponse) as soon as the
// destination answers with ICMP port unreachable, where the system tells,
// and the context's error when ctx ends first.
func (c *Conn) Do(ctx context.Context, r Request) (Response, error) {
	r = r.withDefaults()
	msg, err := BuildRequest(r.Change)
	if err != nil {
		return Response{}, err
	}
	t := &transaction{accept: r.AcceptFrom, replies: make(chan Received, 1),
		to: nat.Unmap(r.To), refused: make(chan struct{}, 1)}
	c.mu.Lock()
	c.pending[msg.TransactionID] = t
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, msg.TransactionID)
		c.mu.Unlock()
	}()

	to := net.UDPAddrFromAddrPort(r.To)
	var sent []time.Time // every transmission, to time the reply against
	attempts := 0
	rto := r.RTO
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		// Stamp before writing: on a fast path the reply can be read before
		// WriteTo returns.
		sent = append(sent, time.Now())
		if _, err := c.pc.WriteTo(msg.Raw, to); err != nil {
			if c.closed() {
				if ctx.Err() != nil {
					return Response{}, ctx.Err()
				}
				return Response{}, c.closedErr()
			}
			return Response{}, fmt.Errorf("send to %s: %w", r.To, err)
		}
		attempts++
		wait := rto
		if attempts >= r.Attempts {
			wait = r.LastWait
		}
		rto *= 2
		timer.Reset(wait)
		select {
		case rep := <-t.replies:
			resp := ParseResponse(rep.Msg, rep.From)
			resp.Attempts = attempts
			resp.RTT, resp.RTTExact = replyRTT(sent, rep.At)
			return resp, nil
		case <-timer.C:
			if attempts >= r.Attempts {
				return Response{Attempts: attempts}, fmt.Errorf("%s: %w after %d attempts", r.To, ErrNoResponse, attempts)
			}
		case <-t.refused:
			return Response{Attempts: attempts}, &refusedError{r.To}
		case <-ctx.Done():
			return Response{Attempts: attempts}, ctx.Err()
		case <-c.done:
			return Response{Attempts: attempts}, c.closedErr()
		}
	}
}

// replyRTT times a reply against the last transmission before it (a reply
// read while the timer fired may predate the retransmission just made).
// A reply that came before any retransmission can only answer the first
// one, so only it is timed exactly (Karn's rule).
func replyRTT(sent []time.Time, at time.Time) (time.Duration, bool) {
	last := 0
	for i, t := range sent {
		if !t.After(at) {
			last = i
		}
	}
	return max(at.Sub(sent[last]), 0), last == 0
}

func (r Request) withDefaults() Request {
	if r.RTO <= 0 {
		r.RTO = DefaultRTO
	}
	if r.Attempts <= 0 {
		r.Attempts = DefaultAttempts
	}
	if r.LastWait <= 0 {
		r.LastWait = 16 * r.RTO // Rm of RFC 8489 section 6.2.1
	}
	if r.AcceptFrom == nil {
		want := r.To
		r.AcceptFrom = func(from netip.AddrPort) bool { return from == want }
	}
	return r
}

// BuildRequest builds a Binding request with a fresh transaction ID, the
// CHANGE-REQUEST flags (none when 0) and a FINGERPRINT.
func BuildRequest(change nat.ChangeFlags) (*stun.Message, error) {
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if change != 0 {
		setters = append(setters, changeRequest(change))
	}
	setters = append(setters, stun.Fingerprint)
	return stun.Build(setters...)
}

type changeRequest nat.ChangeFlags

func (f changeRequest) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChangeRequest, []byte{0, 0, 0, byte(f)})
	return nil
}

// ParseResponse decodes the attributes of a Binding response that came
// from from. Absent attributes are zero values.
func ParseResponse(m *stun.Message, from netip.AddrPort) Response {
	r := Response{From: from}
	var xor stun.XORMappedAddress
	if xor.GetFrom(m) == nil {
		r.XORMapped = toAddrPort(xor.IP, xor.Port)
	}
	var mapped stun.MappedAddress
	if mapped.GetFrom(m) == nil {
		r.Mapped = toAddrPort(mapped.IP, mapped.Port)
	}
	var origin stun.ResponseOrigin
	if origin.GetFrom(m) == nil {
		r.ResponseOrigin = toAddrPort(origin.IP, origin.Port)
	}
	var other stun.OtherAddress
	if other.GetFrom(m) == nil {
		r.OtherAddress = toAddrPort(other.IP, other.Port)
	}
	// RFC 3489's CHANGED-ADDRESS, which RFC 5780 replaced by
	// OTHER-ADDRESS; old servers (stund) still send it.
	var changed stun.MappedAddress
	if changed.GetFromAs(m, stun.AttrChangedAddress) == nil {
		r.ChangedAddress = toAddrPort(changed.IP, changed.Port)
	}
	var sw stun.Software
	if sw.GetFrom(m) == nil {
		r.Software = sw.String()
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var ec stun.ErrorCodeAttribute
		if ec.GetFrom(m) == nil {
			r.ErrorCode = int(ec.Code)
			r.ErrorReason = string(ec.Reason)
		} else {
			r.ErrorCode = -1 // an error response without a readable ERROR-CODE
		}
	}
	return r
}

func toAddrPort(ip net.IP, port int) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 65535 {
		return netip.AddrPort{}
	}
	return nat.Unmap(netip.AddrPortFrom(a, uint16(port)))
}

// AddrPortOf is a socket address as a netip.AddrPort, IPv4-mapped
// addresses shown as IPv4; zero when it cannot be read.
func AddrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		return nat.Unmap(v.AddrPort())
	case *net.TCPAddr:
		return nat.Unmap(v.AddrPort())
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return nat.Unmap(ap)
	}
	return netip.AddrPort{}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// Expect delivers to ch replies with transaction ID id that arrive on c from
// an accepted source, although the request left from another socket.
func (c *Conn) Expect(id [stun.TransactionIDSize]byte, accept func(netip.AddrPort) bool, ch chan Received) {
	c.mu.Lock()
	c.pending[id] = &transaction{accept: accept, replies: ch}
	c.mu.Unlock()
}

// Forget undoes Expect.
func (c *Conn) Forget(ids [][stun.TransactionIDSize]byte) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// WriteRaw sends an already built message from c.
func (c *Conn) WriteRaw(b []byte, to netip.AddrPort) error {
	_, err := c.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

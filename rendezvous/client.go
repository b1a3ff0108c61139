package rendezvous

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultPort is where the rendezvous listens: natcheck serve's STUN port.
const DefaultPort = 3478

// Errors of the client API. Each names a cause a user can act on.
var (
	ErrBlobTooLarge = fmt.Errorf("rendezvous: blob larger than %d bytes", MaxBlob)
	ErrNoAnswer     = errors.New("rendezvous: no answer from the server over UDP or TCP (is it a natcheck serve --rendezvous, and reachable?)")
	ErrDisabled     = errors.New("rendezvous: the server does not offer rendezvous (natcheck serve without --rendezvous)")
	ErrUnknownCode  = errors.New("rendezvous: no such code on the server (mistyped, or expired)")
	ErrTaken        = errors.New("rendezvous: this code is already used by two peers")
	ErrServerFull   = errors.New("rendezvous: the server holds as many codes as it may; try again later")
	ErrPeerLeft     = errors.New("rendezvous: the other side left")
	ErrExpired      = errors.New("rendezvous: the code expired before the other side came")
	errProtocol     = errors.New("rendezvous: unexpected answer from the server")
)

// Client talks to one rendezvous server. The zero value of every field but
// Server is a sensible default.
type Client struct {
	// Server is the rendezvous's UDP address (a natcheck serve
	// --rendezvous on its STUN port, DefaultPort). Resolve names before
	// (natcheck resolves --via with stunclient, so a hanging name lookup
	// is bounded like any other server's).
	Server netip.AddrPort
	// Poll is the interval between polls while waiting for the other side
	// (0: 250 ms).
	Poll time.Duration
	// RTO is the first retransmission timeout of a request; it doubles up
	// to 1 s (0: 250 ms).
	RTO time.Duration
	// Silence is how long a request may go unanswered, retransmissions
	// included, before ErrNoAnswer (0: 5 s).
	Silence time.Duration
	// UDPGrace is how long the first request of a session waits for an
	// answer over UDP before the session moves to TCP, on the same port
	// (0: 1 s, three transmissions); a side whose UDP is blocked still
	// meets. NoTCP keeps to UDP.
	UDPGrace time.Duration
	NoTCP    bool
}

func (c *Client) poll() time.Duration     { return orDefault(c.Poll, 250*time.Millisecond) }
func (c *Client) rto() time.Duration      { return orDefault(c.RTO, 250*time.Millisecond) }
func (c *Client) silence() time.Duration  { return orDefault(c.Silence, 5*time.Second) }
func (c *Client) udpGrace() time.Duration { return orDefault(c.UDPGrace, time.Second) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Session is one side of a rendezvous: its code, socket and state. Its
// methods may be called from several goroutines (e.g. PeerLeft while the
// ICE test runs, and Leave on Ctrl-C).
type Session struct {
	c    Client
	code Code
	keys keys
	role Role
	mine []byte // my sealed blob
	srv  netip.AddrPort

	mu      sync.Mutex
	conn    net.Conn // UDP, or TCP once UDP stayed silent
	stream  bool     // conn is TCP
	cookie  [cookieSize]byte
	pending map[[8]byte]chan reply
	closed  bool
	done    chan struct{} // closed when the current conn's reader ends
	peer    []byte        // the other side's blob, once received
	trips   int           // requests answered (round trips to the server)
}

// RoundTrips is how many requests the server has answered so far: the
// meeting's cost in round trips (a cookie or pad reply counts; a
// retransmission does not).
func (s *Session) RoundTrips() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trips
}

// Create makes a new code on the server and stores blob (sealed) under it.
// It returns once the server holds the blob: the code is then ready to be
// read out (Session.Code). The creator is the controlling side. Wait then
// returns the other side's blob.
func Create(ctx context.Context, server netip.AddrPort, blob []byte) (*Session, error) {
	return (&Client{Server: server}).Create(ctx, blob)
}

// Join stores blob under code and returns the creator's blob. The joiner
// is the controlled side. Keep the session for Leave and PeerLeft.
func Join(ctx context.Context, server netip.AddrPort, code string, blob []byte) (*Session, []byte, error) {
	return (&Client{Server: server}).Join(ctx, code, blob)
}

// Create: see the package function.
func (c *Client) Create(ctx context.Context, blob []byte) (*Session, error) {
	for try := 0; ; try++ {
		code, err := NewCode()
		if err != nil {
			return nil, err
		}
		s, err := c.open(code, Creator, blob)
		if err != nil {
			return nil, err
		}
		st, _, err := s.put(ctx)
		switch {
		case err == nil && st == statusWaiting:
			return s, nil
		case err == nil && st == statusTaken && try < 2:
			// A live code with these 80 bits: draw another.
			s.Close()
			continue
		case err == nil:
			err = statusError(st)
		}
		s.Close()
		return nil, err
	}
}

// Join: see the package function.
func (c *Client) Join(ctx context.Context, code string, blob []byte) (*Session, []byte, error) {
	k, err := ParseCode(code)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.open(k, Joiner, blob)
	if err != nil {
		return nil, nil, err
	}
	st, sealed, err := s.put(ctx)
	if err == nil && st != statusPeer {
		err = statusError(st)
	}
	if err == nil {
		err = s.gotPeer(sealed)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, s.peer, nil
}

func (c *Client) open(code Code, role Role, blob []byte) (*Session, error) {
	if len(blob) > MaxBlob {
		return nil, ErrBlobTooLarge
	}
	if !c.Server.IsValid() {
		return nil, errors.New("rendezvous: no server address")
	}
	s := &Session{c: *c, code: code, keys: code.keys(), role: role, pending: map[[8]byte]chan reply{}, done: make(chan struct{})}
	var err error
	if s.mine, err = seal(&s.keys, role, blob); err != nil {
		return nil, err
	}
	s.srv = netip.AddrPortFrom(c.Server.Addr().Unmap(), c.Server.Port())
	if s.conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.srv)); err != nil {
		return nil, fmt.Errorf("rendezvous: %w", err)
	}
	go s.read(s.conn, false, s.done)
	return s, nil
}

// Code is the code to read out to the other side.
func (s *Session) Code() string { return s.code.String() }

// Role is this side's role: Creator (controlling) or Joiner.
func (s *Session) Role() Role { return s.role }

// Wait polls until the other side has joined and returns its blob. It
// ends with ErrExpired when the code expires first (the server's TTL,
// 2 minutes by default), ErrPeerLeft, ErrNoAnswer when the server falls
// silent, or ctx's error.
func (s *Session) Wait(ctx context.Context) ([]byte, error) {
	for {
		s.mu.Lock()
		peer := s.peer
		s.mu.Unlock()
		if peer != nil {
			return peer, nil
		}
		st, sealed, err := s.roundTrip(ctx, opGet, 0)
		if err != nil {
			return nil, err
		}
		switch st {
		case statusPeer:
			if err := s.gotPeer(sealed); err != nil {
				return nil, err
			}
			continue
		case statusWaiting:
		case statusUnknown:
			return nil, ErrExpired
		default:
			return nil, statusError(st)
		}
		if err := sleep(ctx, s.c.poll()); err != nil {
			return nil, err
		}
	}
}

// PeerLeft polls until the other side has left (Leave) and then returns
// nil; or the code's error (ErrExpired once the server forgot the code,
// ErrNoAnswer) or ctx's. Run it beside the connection test so that Ctrl-C
// on the other side ends this one promptly.
func (s *Session) PeerLeft(ctx context.Context) error {
	for {
		st, _, err := s.roundTrip(ctx, opGet, flagHavePeer)
		if err != nil {
			return err
		}
		switch st {
		case statusLeft:
			return nil
		case statusPresent, statusWaiting, statusPeer:
		case statusUnknown:
			return ErrExpired
		default:
			return statusError(st)
		}
		if err := sleep(ctx, s.c.poll()); err != nil {
			return err
		}
	}
}

// Leave tells the server this side is gone (the other learns it from its
// next poll), then closes the session. It waits for the server's
// acknowledgement at most 1 s, even when ctx is already cancelled (the
// Ctrl-C path: ctx's values are kept, its cancellation is not).
func (s *Session) Leave(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _, err := s.roundTrip(ctx, opLeave, 0)
	s.Close()
	return err
}

// Close releases the socket without telling the server.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conn, done := s.conn, s.done
	s.mu.Unlock()
	err := conn.Close()
	<-done
	return err
}

// Transport is "udp", or "tcp" once the session moved to TCP.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream {
		return "tcp"
	}
	return "udp"
}

// toTCP moves the session to a TCP connection to the same address (the
// first request got no answer over UDP).
func (s *Session) toTCP(ctx context.Context) error {
	// Within the first request's Silence, of which UDPGrace has passed.
	d := net.Dialer{Timeout: max(s.c.silence()-s.c.udpGrace(), 100*time.Millisecond)}
	tc, err := d.DialContext(ctx, "tcp", s.srv.String())
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		tc.Close()
		return net.ErrClosed
	}
	old, oldDone := s.conn, s.done
	s.conn, s.stream, s.done = tc, true, make(chan struct{})
	go s.read(tc, true, s.done)
	s.mu.Unlock()
	old.Close()
	<-oldDone
	return nil
}

func (s *Session) gotPeer(sealed []byte) error {
	p, err := open(&s.keys, 1-s.role, sealed)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.peer == nil {
		s.peer = p
	}
	s.mu.Unlock()
	return nil
}

func (s *Session) put(ctx context.Context) (uint8, []byte, error) {
	return s.roundTrip(ctx, opPut, 0)
}

// roundTrip sends one request and waits for its reply, retransmitting
// (RTO, doubling to 1 s) until Silence has passed. A cookie reply updates
// the cookie and asks again at once; a pad reply asks again padded.
func (s *Session) roundTrip(ctx context.Context, op, flags uint8) (uint8, []byte, error) {
	pad := minPadded
	if op == opLeave || flags&flagHavePeer != 0 {
		pad = 0 // the answer carries no blob
	}
	for attempt := 0; attempt < 4; attempt++ {
		r := request{op: op, role: s.role, flags: flags, lookup: s.keys.lookup}
		if op == opPut {
			r.blob = s.mine
		}
		rep, err := s.exchange(ctx, &r, pad)
		if err != nil {
			return 0, nil, err
		}
		switch rep.status {
		case statusCookie:
			s.mu.Lock()
			s.cookie = rep.cookie
			s.mu.Unlock()
			continue
		case statusPad:
			if int(rep.arg) <= pad || int(rep.arg) > MaxMessage {
				return 0, nil, errProtocol
			}
			pad = int(rep.arg)
			continue
		case statusDisabled:
			return 0, nil, ErrDisabled
		}
		return rep.status, rep.blob, nil
	}
	return 0, nil, errProtocol
}

// exchange sends r until a reply with its transaction ID comes: over UDP
// padded to pad and retransmitted; over TCP once. The first request of a
// session that hears nothing over UDP within UDPGrace moves the session to
// TCP and is sent again there.
func (s *Session) exchange(ctx context.Context, r *request, pad int) (reply, error) {
	if _, err := rand.Read(r.txid[:]); err != nil {
		return reply{}, err
	}
	ch := make(chan reply, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return reply{}, net.ErrClosed
	}
	r.cookie = s.cookie
	s.pending[r.txid] = ch
	first := s.trips == 0 && !s.stream && !s.c.NoTCP // UDP not yet heard
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, r.txid)
		s.mu.Unlock()
	}()
	giveUp := time.NewTimer(s.c.silence())
	defer giveUp.Stop()
	var grace <-chan time.Time
	if first {
		g := time.NewTimer(s.c.udpGrace())
		defer g.Stop()
		grace = g.C
	}
	rto := s.c.rto()
	send := true
	for {
		s.mu.Lock()
		conn, stream, done := s.conn, s.stream, s.done
		s.mu.Unlock()
		if send {
			pkt := appendRequest(make([]byte, 0, max(pad, reqHeader+len(r.blob))), r, pad)
			if stream {
				pkt = appendRequest(nil, r, 0) // no amplification to pad against
			}
			if _, err := conn.Write(pkt); err != nil && (stream || !isTransient(err)) {
				return reply{}, fmt.Errorf("rendezvous: %w", err)
			}
			send = !stream // a stream does not lose it
		}
		t := time.NewTimer(rto)
		select {
		case rep := <-ch:
			t.Stop()
			s.mu.Lock()
			s.trips++
			s.mu.Unlock()
			return rep, nil
		case <-t.C:
			rto = min(2*rto, time.Second)
		case <-grace:
			t.Stop()
			grace = nil
			if err := s.toTCP(ctx); err == nil {
				send = true
			}
		case <-giveUp.C:
			t.Stop()
			return reply{}, ErrNoAnswer
		case <-done:
			t.Stop()
			s.mu.Lock()
			closed, moved := s.closed, s.done != done
			s.mu.Unlock()
			switch {
			case moved:
				continue
			case closed:
				return reply{}, net.ErrClosed
			}
			return reply{}, fmt.Errorf("%w (the TCP connection was closed)", ErrNoAnswer)
		case <-ctx.Done():
			t.Stop()
			return reply{}, ctx.Err()
		}
	}
}

// isTransient: an ICMP unreachable from an earlier datagram surfaces as
// ECONNREFUSED on a connected UDP socket; keep trying until Silence.
func isTransient(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !errors.Is(err, net.ErrClosed)
}

// read hands the replies that come on conn (datagrams, or a TCP stream)
// to the requests waiting for them, and closes done when conn ends.
func (s *Session) read(conn net.Conn, stream bool, done chan struct{}) {
	defer close(done)
	buf := make([]byte, MaxMessage+1)
	for {
		var n int
		var err error
		if stream {
			n, err = readReply(conn, buf)
			if err != nil {
				return // closed, or garbage: a stream cannot resync
			}
		} else if n, err = conn.Read(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED and the like: the request retransmits
		}
		var rep reply
		if !parseReply(buf[:n], &rep) {
			if stream {
				return
			}
			continue
		}
		if rep.blob != nil {
			rep.blob = append([]byte(nil), rep.blob...)
		}
		s.mu.Lock()
		ch := s.pending[rep.txid]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- rep:
			default: // a duplicate answer
			}
		}
	}
}

func statusError(st uint8) error {
	switch st {
	case statusUnknown:
		return ErrUnknownCode
	case statusTaken:
		return ErrTaken
	case statusFull:
		return ErrServerFull
	case statusLeft:
		return ErrPeerLeft
	case statusDisabled:
		return ErrDisabled
	}
	return errProtocol
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

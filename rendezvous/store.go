package rendezvous

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Server-side defaults and bounds.
const (
	DefaultTTL          = 2 * time.Minute
	MaxTTL              = 5 * time.Minute
	DefaultMaxCodes     = 10000
	DefaultMaxPerSource = 64

	// cookieEpoch is how often the cookie changes; a cookie is accepted
	// in its epoch and the next, so it lives 30 to 60 s. A client whose
	// cookie went stale is given a new one and asks again.
	cookieEpoch = 30 * time.Second
	// sweepEvery: expired codes are removed at most this often (and on
	// access, and before the metrics are read).
	sweepEvery = time.Second
)

// StoreConfig bounds a Store.
type StoreConfig struct {
	// TTL is how long a code lives after its creation, whatever happens
	// (0: DefaultTTL; at most MaxTTL).
	TTL time.Duration
	// MaxCodes bounds the codes held at once (0: DefaultMaxCodes).
	MaxCodes int
	// MaxPerSource bounds the codes created from one source address (an
	// IPv4 address or an IPv6 /64) and alive at once (0: DefaultMaxPerSource).
	MaxPerSource int
	// Amplification bounds a reply to this many times its request's
	// size (0: 4, as the STUN server).
	Amplification int
}

// Store is the server side of the rendezvous: per lookup key at most two
// sealed blobs (the creator's and the joiner's), which it cannot read,
// kept until the code's TTL. It does no I/O: Handle turns a request
// datagram into a reply. It is safe for concurrent use.
type Store struct {
	cfg    StoreConfig
	secret [32]byte
	macs   sync.Pool // hash.Hash: HMAC-SHA256 keyed with secret

	mu        sync.Mutex
	codes     map[LookupKey]*entry
	perSource map[netip.Prefix]int
	blobs     int // sealed blobs held
	bytes     int // their bytes
	lastSweep int64

	stored, expired, left atomic.Uint64
	refused               [numRefusals]atomic.Uint64
}

type entry struct {
	expires int64        // monotonic ns
	owner   netip.Prefix // the creator's source address (/32 or /64)
	slot    [2]slot      // by role
}

type slot struct {
	blob    []byte
	present bool // has put a blob (and not left)
	left    bool
}

// Refusal reasons, for metrics.
const (
	RefusedThirdPeer   = iota // a role of the code already holds another blob
	RefusedTableFull          // MaxCodes reached
	RefusedSourceLimit        // MaxPerSource reached for the creator's address
	RefusedUnknownCode        // no such code (or expired)
	numRefusals
)

// RefusalNames label the refusal reasons in metrics.
var RefusalNames = [numRefusals]string{"third_peer", "table_full", "source_limit", "unknown_code"}

// NewStore makes a store with a fresh random cookie secret.
func NewStore(cfg StoreConfig) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	cfg.TTL = min(cfg.TTL, MaxTTL)
	if cfg.MaxCodes <= 0 {
		cfg.MaxCodes = DefaultMaxCodes
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = DefaultMaxPerSource
	}
	if cfg.Amplification <= 0 {
		cfg.Amplification = 4
	}
	s := &Store{cfg: cfg, codes: map[LookupKey]*entry{}, perSource: map[netip.Prefix]int{}}
	if _, err := rand.Read(s.secret[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	s.macs.New = func() any { return hmac.New(sha256.New, s.secret[:]) }
	return s
}

// TTL is the effective lifetime of a code.
func (s *Store) TTL() time.Duration { return s.cfg.TTL }

// cookieFor computes the cookie of src in epoch: the epoch and 12 bytes of
// HMAC-SHA256(secret, epoch || address || port). Stateless: the server
// keeps nothing per source until a request echoes it.
func (s *Store) cookieFor(src netip.AddrPort, epoch uint32, out *[cookieSize]byte) {
	var in [4 + 16 + 2]byte
	binary.BigEndian.PutUint32(in[0:4], epoch)
	a := src.Addr().Unmap().As16()
	copy(in[4:20], a[:])
	binary.BigEndian.PutUint16(in[20:22], src.Port())
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(in[:])
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	s.macs.Put(m)
	binary.BigEndian.PutUint32(out[0:4], epoch)
	copy(out[4:], sum[:cookieSize-4])
}

func (s *Store) cookieOK(src netip.AddrPort, c *[cookieSize]byte, epoch uint32) bool {
	e := binary.BigEndian.Uint32(c[0:4])
	if e != epoch && e+1 != epoch {
		return false
	}
	var want [cookieSize]byte
	s.cookieFor(src, e, &want)
	return hmac.Equal(want[:], c[:])
}

func sourcePrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Disabled answers a well-formed rendezvous request on a server without
// the service: a reply no larger than the request, saying so. Malformed
// datagrams get no answer (0).
func Disabled(pkt []byte, out []byte) int {
	var r request
	if !parseRequest(pkt, &r) || len(out) < replyHeader {
		return 0
	}
	return putReply(out, statusDisabled, 0, &r.txid)
}

// Handle answers one rendezvous datagram from src at now (monotonic
// nanoseconds, any origin) into out (at least MaxMessage bytes) and returns
// the reply's length; 0 means no answer (malformed). Replies never exceed
// Amplification times the request; the largest ones (a blob) go only to a
// source that echoed a valid cookie.
func (s *Store) Handle(pkt []byte, src netip.AddrPort, now int64, out []byte) int {
	return s.handle(pkt, src, now, out, false)
}

// HandleStream is Handle for a request that came over TCP (framed by
// itself, see ReadRequest): the handshake has proven the source and the
// answer goes back on the same connection, so there is no cookie and no
// amplification bound.
func (s *Store) HandleStream(pkt []byte, src netip.AddrPort, now int64, out []byte) int {
	return s.handle(pkt, src, now, out, true)
}

func (s *Store) handle(pkt []byte, src netip.AddrPort, now int64, out []byte, stream bool) int {
	var r request
	if !parseRequest(pkt, &r) || len(out) < MaxMessage {
		return 0
	}
	epoch := uint32(now / int64(cookieEpoch))
	if !stream && !s.cookieOK(src, &r.cookie, epoch) {
		// 32 bytes to a request of at least 50: no amplification, no
		// state. Only a source that receives this can go further.
		n := putReply(out, statusCookie, 0, &r.txid)
		var c [cookieSize]byte
		s.cookieFor(src, epoch, &c)
		return n + copy(out[n:], c[:])
	}
	status, blob := s.apply(&r, src, now)
	if status == statusPeer {
		need := replyHeader + 2 + len(blob)
		if !stream && need > s.cfg.Amplification*len(pkt) {
			min := (need + s.cfg.Amplification - 1) / s.cfg.Amplification
			return putReply(out, statusPad, uint16(min), &r.txid)
		}
		n := putReply(out, statusPeer, 0, &r.txid)
		binary.BigEndian.PutUint16(out[n:], uint16(len(blob)))
		return n + 2 + copy(out[n+2:], blob)
	}
	return putReply(out, status, 0, &r.txid)
}

// apply runs a request with a valid cookie against the table. The blob it
// returns (statusPeer) may be read after the lock is released: a stored
// blob is never written to, only dropped.
func (s *Store) apply(r *request, src netip.AddrPort, now int64) (uint8, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.lastSweep >= int64(sweepEvery) {
		s.sweep(now)
	}
	e := s.codes[r.lookup]
	if e != nil && now >= e.expires {
		s.remove(r.lookup, e)
		s.expired.Add(1)
		e = nil
	}
	if e == nil {
		if r.op != opPut || r.role != Creator {
			s.refused[RefusedUnknownCode].Add(1)
			if r.op == opLeave {
				return statusAck, nil // nothing left to leave
			}
			return statusUnknown, nil
		}
		if len(s.codes) >= s.cfg.MaxCodes {
			s.refused[RefusedTableFull].Add(1)
			return statusFull, nil
		}
		owner := sourcePrefix(src.Addr())
		if s.perSource[owner] >= s.cfg.MaxPerSource {
			s.refused[RefusedSourceLimit].Add(1)
			return statusFull, nil
		}
		e = &entry{expires: now + int64(s.cfg.TTL), owner: owner}
		s.codes[r.lookup] = e
		s.perSource[owner]++
	}
	me, other := &e.slot[r.role], &e.slot[1-r.role]
	switch r.op {
	case opLeave:
		if me.present {
			s.drop(me)
			me.left = true
			s.left.Add(1)
		}
		if me.left && other.left {
			// Nobody is left to tell: forget the code now. Otherwise it
			// stays, without the leaver's blob, so that the other side
			// (or a late joiner) learns that this one left.
			s.remove(r.lookup, e)
		}
		return statusAck, nil
	case opPut:
		switch {
		case me.left:
			s.refused[RefusedThirdPeer].Add(1)
			return statusTaken, nil
		case me.present && !bytes.Equal(me.blob, r.blob):
			// A retransmission carries the same sealed bytes; anything
			// else is a third peer (or a stale client) and is refused.
			s.refused[RefusedThirdPeer].Add(1)
			return statusTaken, nil
		case !me.present:
			me.blob = bytes.Clone(r.blob)
			me.present = true
			s.blobs++
			s.bytes += len(me.blob)
			s.stored.Add(1)
		}
	case opGet:
		if !me.present {
			// Only the two sides that stored a blob may read.
			s.refused[RefusedUnknownCode].Add(1)
			return statusUnknown, nil
		}
	}
	switch {
	case other.left:
		return statusLeft, nil
	case !other.present:
		return statusWaiting, nil
	case r.flags&flagHavePeer != 0:
		return statusPresent, nil
	}
	return statusPeer, other.blob
}

func (s *Store) drop(sl *slot) {
	if sl.present {
		s.blobs--
		s.bytes -= len(sl.blob)
	}
	sl.blob, sl.present = nil, false
}

func (s *Store) remove(k LookupKey, e *entry) {
	s.drop(&e.slot[0])
	s.drop(&e.slot[1])
	delete(s.codes, k)
	if s.perSource[e.owner]--; s.perSource[e.owner] <= 0 {
		delete(s.perSource, e.owner)
	}
}

func (s *Store) sweep(now int64) {
	s.lastSweep = now
	for k, e := range s.codes {
		if now >= e.expires {
			s.remove(k, e)
			s.expired.Add(1)
		}
	}
}

// StoreStats is a snapshot for the metrics page.
type StoreStats struct {
	Codes, Blobs, Bytes   int    // held now
	Stored, Expired, Left uint64 // totals
	Refused               [numRefusals]uint64
}

// Stats removes expired codes, then reports.
func (s *Store) Stats(now int64) StoreStats {
	s.mu.Lock()
	s.sweep(now)
	st := StoreStats{Codes: len(s.codes), Blobs: s.blobs, Bytes: s.bytes}
	s.mu.Unlock()
	st.Stored, st.Expired, st.Left = s.stored.Load(), s.expired.Load(), s.left.Load()
	for i := range st.Refused {
		st.Refused[i] = s.refused[i].Load()
	}
	return st
}

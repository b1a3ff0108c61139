package server

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// limiter bounds what one source may draw from the server, at two levels:
//
//   - per source address (an IPv4 address or an IPv6 /64): the total of
//     all its ports, the figure that bounds what a spoofed flood can aim at
//     one victim;
//   - per source address and port (one client socket, or one NAT mapping):
//     a quarter of that rate and a tenth of that burst, so that one busy
//     socket cannot use up what the other users behind the same address
//     (an office or carrier NAT) need.
//
// A request needs a token at both levels, with one exception: a UDP
// request with CHANGE-REQUEST may overdraw its address's bucket, down to
// minus half the burst (it still needs its port's token). A behaviour
// client sends its change requests only after a plain binding was
// answered, and reads their silence as filtering; letting them overdraw
// means that when many clients share an address, new runs fail at their
// first binding (an unknown verdict or no answer) instead of runs that
// already started losing their change requests (a wrong verdict). The
// overdraft is bounded, so the address's total stays bounded too: over
// any interval T at most burst*1.5 + rate*T requests.
//
// TCP requests from an address whose UDP requests were dropped within
// tcpHoldNs are dropped too: a client that gets TCP answers while UDP is
// silent concludes that UDP is blocked on its path.
type limiter struct {
	addr, flow table
}

// tcpHoldNs: how long after a dropped UDP request TCP is refused too. It
// covers natcheck's TCP fallback (after 250 ms) and its UDP grace (1 s).
const tcpHoldNs = 2e9

// request classes for limiter.allow.
const (
	limitPlain  = iota // UDP without CHANGE-REQUEST
	limitChange        // UDP with CHANGE-REQUEST
	limitTCP
)

// table is a token bucket per key in a fixed-size, set-associative table:
// memory is bounded whatever the number of sources, and a full set evicts
// its least recently seen entry. Eviction fails open (the evicted source
// starts again with a full bucket), so spoofed floods cannot lock out real
// clients, only dilute the limit.
type table struct {
	ratePerNs float64
	burst     float64
	seed      uint64
	shards    [limiterShards]limiterShard
}

const (
	limiterShards = 64
	limiterSets   = 256 // per shard
	limiterWays   = 4
	// limiterEntries is the size of each table: 64*256*4 = 65536 keys,
	// 3 MiB (two tables: 6 MiB).
	limiterEntries = limiterShards * limiterSets * limiterWays
)

type limiterShard struct {
	mu      sync.Mutex
	entries [limiterSets * limiterWays]limiterEntry
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

type limiterEntry struct {
	key      [3]uint64
	last     int64 // monotonic nanoseconds of the last request; 0 = empty
	lastDrop int64 // monotonic nanoseconds of the last dropped UDP request
	tokens   float64
}

// newLimiter limits each source address to perSecond requests with a
// bucket of burst, and each of its ports to a quarter of the rate and a
// tenth of the burst.
func newLimiter(perSecond float64, burst int) *limiter {
	if burst < 1 {
		burst = 1
	}
	l := &limiter{}
	l.addr.init(perSecond, float64(burst))
	l.flow.init(perSecond/4, max(float64(burst)/10, 1))
	return l
}

func (t *table) init(perSecond, burst float64) {
	t.ratePerNs, t.burst, t.seed = perSecond/1e9, burst, rand.Uint64()|1
}

// addrKey identifies a source address: the IPv4 address, or the IPv6 /64
// (one host usually owns a whole /64, so per-address limits would be void).
func addrKey(a netip.Addr) [3]uint64 {
	a = a.Unmap()
	b := a.As16()
	if a.Is4() {
		return [3]uint64{0, binary.BigEndian.Uint64(b[8:]), 0}
	}
	return [3]uint64{binary.BigEndian.Uint64(b[:8]), 1, 0}
}

// flowKey identifies a source address and port (the whole IPv6 address).
func flowKey(ap netip.AddrPort) [3]uint64 {
	b := ap.Addr().Unmap().As16()
	return [3]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), 1<<16 | uint64(ap.Port())}
}

// allow reports whether a request of class (limitPlain, limitChange,
// limitTCP) from src at time now (monotonic ns, > 0) is within the limits,
// and takes its tokens if so.
func (l *limiter) allow(src netip.AddrPort, class int, now int64) bool {
	if !l.flow.take(flowKey(src), now, 0, 0) {
		return false
	}
	floor := 0.0
	if class == limitChange {
		floor = -l.addr.burst / 2
	}
	var hold int64
	if class == limitTCP {
		hold = tcpHoldNs
	}
	return l.addr.take(addrKey(src.Addr()), now, floor, hold)
}

// take refills k's bucket and takes a token if the balance stays at or
// above floor, and, with hold > 0 (TCP), no UDP request of k was dropped
// within hold.
func (t *table) take(k [3]uint64, now int64, floor float64, hold int64) bool {
	h := (k[0]^t.seed)*0x9E3779B97F4A7C15 ^ (k[1]+t.seed)*0xC2B2AE3D27D4EB4F ^ (k[2]+t.seed)*0x165667B19E3779F9
	h ^= h >> 29
	sh := &t.shards[h%limiterShards]
	set := int(h>>8%limiterSets) * limiterWays
	sh.mu.Lock()
	defer sh.mu.Unlock()
	victim := set
	for i := set; i < set+limiterWays; i++ {
		e := &sh.entries[i]
		if e.last != 0 && e.key == k {
			if now <= e.last {
				// Workers read the clock a little apart: no refill, and
				// never move last backwards.
				now = e.last
			}
			e.tokens += float64(now-e.last) * t.ratePerNs
			if e.tokens > t.burst {
				e.tokens = t.burst
			}
			e.last = now
			switch {
			case hold > 0 && e.lastDrop != 0 && now-e.lastDrop < hold:
				return false
			case e.tokens-1 < floor:
				if hold == 0 {
					e.lastDrop = now
				}
				return false
			}
			e.tokens--
			return true
		}
		if e.last < sh.entries[victim].last {
			victim = i
		}
	}
	sh.entries[victim] = limiterEntry{key: k, last: now, tokens: t.burst - 1}
	return true
}

// size counts occupied entries of the address table, for the metrics page.
func (l *limiter) size() int { return l.addr.size() }

func (t *table) size() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for j := range sh.entries {
			if sh.entries[j].last != 0 {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

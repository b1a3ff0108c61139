package server

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// limiter is a per-source token bucket in a fixed-size, set-associative
// table: memory is bounded whatever the number of sources, and a full set
// evicts its least recently seen entry. Eviction fails open (the evicted
// source starts again with a full bucket), so spoofed floods cannot lock
// out real clients, only dilute the limit.
type limiter struct {
	ratePerNs float64
	burst     float64
	seed      uint64
	shards    [limiterShards]limiterShard
}

const (
	limiterShards = 64
	limiterSets   = 256 // per shard
	limiterWays   = 4
	// limiterEntries is the table size: 64*256*4 = 65536 sources, 2 MiB.
	limiterEntries = limiterShards * limiterSets * limiterWays
)

type limiterShard struct {
	mu      sync.Mutex
	entries [limiterSets * limiterWays]limiterEntry
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

type limiterEntry struct {
	key    [2]uint64
	last   int64 // monotonic nanoseconds of the last request; 0 = empty
	tokens float64
}

func newLimiter(perSecond float64, burst int) *limiter {
	if burst < 1 {
		burst = 1
	}
	return &limiter{ratePerNs: perSecond / 1e9, burst: float64(burst), seed: rand.Uint64() | 1}
}

// sourceKey identifies a source: the IPv4 address, or the IPv6 /64 (one
// host usually owns a whole /64, so per-address limits would be void).
func sourceKey(a netip.Addr) [2]uint64 {
	a = a.Unmap()
	b := a.As16()
	if a.Is4() {
		return [2]uint64{0, binary.BigEndian.Uint64(b[8:])}
	}
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), 1}
}

// allow reports whether a request from a at time now (monotonic ns, > 0) is within
// the rate, and takes a token if so.
func (l *limiter) allow(a netip.Addr, now int64) bool {
	k := sourceKey(a)
	h := (k[0]^l.seed)*0x9E3779B97F4A7C15 ^ (k[1]+l.seed)*0xC2B2AE3D27D4EB4F
	h ^= h >> 29
	sh := &l.shards[h%limiterShards]
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
			e.tokens += float64(now-e.last) * l.ratePerNs
			if e.tokens > l.burst {
				e.tokens = l.burst
			}
			e.last = now
			if e.tokens < 1 {
				return false
			}
			e.tokens--
			return true
		}
		if e.last < sh.entries[victim].last {
			victim = i
		}
	}
	sh.entries[victim] = limiterEntry{key: k, last: now, tokens: l.burst - 1}
	return true
}

// size counts occupied entries, for the metrics page.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
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

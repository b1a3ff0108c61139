// Command stunload measures how many STUN Binding requests per second a
// server answers on this host: many UDP sockets, each keeping a fixed
// number of requests in flight, for a fixed time. It refuses targets other
// than loopback and the benchmarking range 198.18.0.0/15 (RFC 2544), which
// bench/serve-scale.sh assigns inside a network namespace of its own.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func main() {
	target := flag.String("target", "127.0.0.1:3478", "STUN server (loopback or 198.18.0.0/15 only)")
	sockets := flag.Int("sockets", 16, "concurrent client sockets (1-1024)")
	window := flag.Int("window", 16, "requests in flight per socket (1-64)")
	duration := flag.Duration("duration", 5*time.Second, "measuring time (at most 5m)")
	warmup := flag.Duration("warmup", time.Second, "time before measuring starts")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*target)
	switch {
	case err != nil:
		fail("bad -target: %v", err)
	case !benchTarget(ap.Addr()):
		fail("-target %s is neither loopback nor in 198.18.0.0/15", ap)
	case *sockets < 1 || *sockets > 1024 || *window < 1 || *window > 64:
		fail("-sockets must be 1-1024 and -window 1-64")
	case *duration <= 0 || *duration > 5*time.Minute:
		fail("-duration must be positive and at most 5m")
	}
	r, err := run(ap, *sockets, *window, *warmup, *duration)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("%.0f requests/s answered (%d in %v, %d sockets x %d in flight, %d timeouts)\n",
		r.rate, r.answered, *duration, *sockets, *window, r.timeouts)
}

// benchRange is RFC 2544's range for benchmarking: never routed on the
// internet, so a flood aimed at it cannot leave a lab.
var benchRange = netip.MustParsePrefix("198.18.0.0/15")

// benchTarget says whether a flood may be aimed at a: loopback, or the
// benchmarking range.
func benchTarget(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || benchRange.Contains(a)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stunload: "+format+"\n", args...)
	os.Exit(2)
}

type result struct {
	answered, timeouts uint64
	rate               float64
}

func run(target netip.AddrPort, sockets, window int, warmup, duration time.Duration) (result, error) {
	var counting atomic.Bool
	var answered, timeouts atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conns := make([]*net.UDPConn, 0, sockets)
	for i := 0; i < sockets; i++ {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return result{}, err
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(c, uint32(i), window, stop, &counting, &answered, &timeouts)
		}()
	}
	time.Sleep(warmup)
	counting.Store(true)
	start := time.Now()
	time.Sleep(duration)
	n := answered.Load()
	elapsed := time.Since(start)
	close(stop)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	if n == 0 {
		return result{}, errors.New("no answers: is a STUN server listening on " + target.String() + "?")
	}
	return result{answered: n, timeouts: timeouts.Load(), rate: float64(n) / elapsed.Seconds()}, nil
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// client keeps window requests in flight on c, reading and writing them in
// batches (recvmmsg/sendmmsg) so that the generator spends few system calls
// per request and the server, not the generator, is what gets measured. A
// reply counts only if it is a Binding success response to this socket
// (transaction ID prefix). After 100 ms of silence it refills the window,
// so lost datagrams cannot stall it.
func client(c *net.UDPConn, id uint32, window int, stop chan struct{}, counting *atomic.Bool, answered, timeouts *atomic.Uint64) {
	var bc batchConn = ipv4.NewPacketConn(c)
	if c.RemoteAddr().(*net.UDPAddr).IP.To4() == nil {
		bc = ipv6.NewPacketConn(c)
	}
	var seq uint64
	reqs := make([]ipv4.Message, window)
	for i := range reqs {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], 0x0001)
		binary.BigEndian.PutUint32(b[4:], 0x2112A442)
		binary.BigEndian.PutUint32(b[8:], id)
		reqs[i].Buffers = [][]byte{b}
	}
	send := func(n int) bool {
		for i := 0; i < n; i++ {
			seq++
			binary.BigEndian.PutUint64(reqs[i].Buffers[0][12:], seq)
		}
		for done := 0; done < n; {
			k, err := bc.WriteBatch(reqs[done:n], 0)
			if err != nil {
				return false
			}
			done += k
		}
		return true
	}
	if !send(window) {
		return
	}
	resps := make([]ipv4.Message, window)
	for i := range resps {
		resps[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	var deadline time.Time
	for {
		select {
		case <-stop:
			return
		default:
		}
		// Moving the deadline costs a timer update; do it at most every
		// 50 ms, so the generator spends its time on datagrams.
		if now := time.Now(); deadline.Sub(now) < 50*time.Millisecond {
			deadline = now.Add(100 * time.Millisecond)
			_ = c.SetReadDeadline(deadline)
		}
		n, err := bc.ReadBatch(resps, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				timeouts.Add(1)
				deadline = time.Time{}
				if !send(window) {
					return
				}
				continue
			}
			return
		}
		ok := 0
		for _, m := range resps[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) >= 20 && binary.BigEndian.Uint16(b) == 0x0101 && binary.BigEndian.Uint32(b[8:]) == id {
				ok++
			}
		}
		if counting.Load() {
			answered.Add(uint64(ok))
		}
		if !send(ok) {
			return
		}
	}
}

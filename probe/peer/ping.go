package peer

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"time"
)

// The messages over the connected pair: "nc", a kind, a sequence number
// and the sender's clock (echoed in the pong).
const (
	kindPing = 'p'
	kindPong = 'P'
	kindDone = 'd' // this side has sent its pings and had its answers
	kindBye  = 'b' // this side was interrupted
	msgLen   = 2 + 1 + 2 + 8
)

func message(kind byte, seq uint16, t int64) []byte {
	b := append([]byte("nc"), kind)
	b = binary.BigEndian.AppendUint16(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(t))
}

// conn is what ping needs of an ice.Conn.
type conn interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}

// ping sends n pings over c, 20 ms apart, and answers the peer's, until
// both sides are done (each sends "done" when its pings are answered or
// their grace ended), the peer says bye, or ctx ends (then this side says
// bye). wait bounds waiting for the peer's "done".
func ping(ctx context.Context, c conn, n int, wait time.Duration) (Pings, bool) {
	var (
		mu       sync.Mutex
		got      = make(map[uint16]time.Duration)
		allIn    = make(chan struct{})
		peerDone = make(chan struct{})
		peerLeft = make(chan struct{})
		once     [3]sync.Once
	)
	base := time.Now()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 1500)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if k != msgLen || buf[0] != 'n' || buf[1] != 'c' {
				continue
			}
			seq := binary.BigEndian.Uint16(buf[3:])
			t := int64(binary.BigEndian.Uint64(buf[5:]))
			switch buf[2] {
			case kindPing:
				_, _ = c.Write(message(kindPong, seq, t))
			case kindPong:
				rtt := time.Since(base) - time.Duration(t)
				mu.Lock()
				if _, dup := got[seq]; !dup && int(seq) < n && rtt >= 0 {
					got[seq] = rtt
					if len(got) == n {
						once[0].Do(func() { close(allIn) })
					}
				}
				mu.Unlock()
			case kindDone:
				once[1].Do(func() { close(peerDone) })
			case kindBye:
				once[2].Do(func() { close(peerLeft) })
				return
			}
		}
	}()
	stop := func() {
		_ = c.SetReadDeadline(time.Now())
		<-readerDone
	}
	left := false
	bye := func() {
		for range 3 {
			_, _ = c.Write(message(kindBye, 0, 0))
		}
	}

	sent := 0
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
send:
	for sent < n {
		_, _ = c.Write(message(kindPing, uint16(sent), int64(time.Since(base))))
		sent++
		if sent == n {
			break
		}
		select {
		case <-tick.C:
		case <-peerLeft:
			left = true
			break send
		case <-ctx.Done():
			bye()
			stop()
			return result(sent, got, &mu), false
		}
	}
	// The last pongs: a grace of 4 round trips (at least 200 ms, at most
	// 1 s) after the last ping.
	grace := 200 * time.Millisecond
	mu.Lock()
	for _, r := range got {
		grace = max(grace, 4*r)
	}
	mu.Unlock()
	grace = min(grace, time.Second)
	if !left {
		select {
		case <-allIn:
		case <-time.After(grace):
		case <-peerLeft:
			left = true
		case <-ctx.Done():
			bye()
			stop()
			return result(sent, got, &mu), false
		}
	}
	if !left {
		done := message(kindDone, 0, 0)
		_, _ = c.Write(done)
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		resend := time.NewTicker(100 * time.Millisecond)
		defer resend.Stop()
	wait:
		for {
			select {
			case <-peerDone:
				break wait
			case <-peerLeft:
				left = true
				break wait
			case <-resend.C:
				_, _ = c.Write(done)
			case <-deadline.C:
				break wait
			case <-ctx.Done():
				bye()
				stop()
				return result(sent, got, &mu), false
			}
		}
		// A few more "done"s: the peer may still wait for one.
		for range 2 {
			_, _ = c.Write(done)
		}
	}
	stop()
	return result(sent, got, &mu), left
}

func result(sent int, got map[uint16]time.Duration, mu *sync.Mutex) Pings {
	mu.Lock()
	defer mu.Unlock()
	p := Pings{Sent: sent, Received: len(got)}
	var sum time.Duration
	for _, r := range got {
		sum += r
	}
	if p.Received > 0 {
		p.RTT = sum / time.Duration(p.Received)
	}
	if sent > 0 {
		p.Loss = 1 - float64(p.Received)/float64(sent)
	}
	return p
}

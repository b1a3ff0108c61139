package server

import (
	"time"

	"github.com/natcheck/natcheck/rendezvous"
)

// rxSize is the receive buffer per datagram: room for a STUN request padded
// to a 1500-byte MTU (RFC 5780 PADDING; STUN requests over 2048 bytes are
// dropped) and for a rendezvous request carrying a 2 KiB blob. Larger
// datagrams are dropped.
const rxSize = rendezvous.MaxMessage

// udpLoop answers datagrams arriving on endpoint ep of worker w until the
// socket is closed.
func (s *Server) udpLoop(sf *servedFamily, w, ep int, c *counters) {
	if s.cfg.Batch > 1 && batchSupported {
		s.udpLoopBatch(sf, w, ep, c)
		return
	}
	s.udpLoopSimple(sf, w, ep, c)
}

// udpLoopSimple moves one datagram per system call. It is the portable
// path, and the reference the batch path is tested against.
func (s *Server) udpLoopSimple(sf *servedFamily, w, ep int, c *counters) {
	conn := sf.udp[w][ep]
	buf := make([]byte, rxSize)
	out := make([]byte, maxResponse)
	for {
		n, _, flags, src, err := conn.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			if isClosed(err) {
				s.socketGone("udp", sf.fam.ep[ep], err)
				return
			}
			s.cfg.Logf("udp read on %s: %v", sf.fam.ep[ep], err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		c.received.Add(1)
		c.bytesIn.Add(uint64(n))
		if flags&msgTrunc != 0 {
			c.drop(dropTooLarge)
			continue
		}
		rep := sf.h.handle(buf[:n], src, ep, false, s.now(), out)
		if rep.n == 0 {
			c.drop(rep.drop)
			continue
		}
		if _, err := sf.udp[w][rep.from].WriteToUDPAddrPort(out[:rep.n], rep.to); err != nil {
			if isClosed(err) {
				s.socketGone("udp", sf.fam.ep[rep.from], err)
				return
			}
			c.drop(dropSendError)
			continue
		}
		c.sent(rep.kind, rep.n)
	}
}

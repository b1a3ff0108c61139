//go:build !linux

package server

// Without recvmmsg/sendmmsg every datagram takes its own system call.
const (
	batchSupported = false
	msgTrunc       = 0
)

func (s *Server) udpLoopBatch(sf *servedFamily, w, ep int, c *counters) {
	s.udpLoopSimple(sf, w, ep, c)
}

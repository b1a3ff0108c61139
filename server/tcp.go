package server

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/rendezvous"
)

// acceptLoop accepts TCP connections on endpoint ep until the listener is
// closed. Connections beyond the global or per-source cap are closed at once.
func (s *Server) acceptLoop(sf *servedFamily, ep int, ln *net.TCPListener) {
	for {
		conn, err := ln.AcceptTCP()
		if err != nil {
			if isClosed(err) {
				s.socketGone("tcp", sf.fam.ep[ep], err)
				return
			}
			s.cfg.Logf("tcp accept on %s: %v", sf.fam.ep[ep], err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		src := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		if !s.admit(conn, src.Addr().Unmap()) {
			s.tcpRejected.Add(1)
			conn.Close()
			continue
		}
		s.tcpAccepted.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(conn, src.Addr().Unmap())
			s.serveConn(sf, ep, conn, src)
		}()
	}
}

func (s *Server) admit(c net.Conn, ip netip.Addr) bool {
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	if s.tcpClosing || len(s.tcpConns) >= s.cfg.MaxTCPConns || s.tcpPerIP[ip] >= s.cfg.MaxTCPConnsPerIP {
		return false
	}
	s.tcpConns[c] = struct{}{}
	s.tcpPerIP[ip]++
	s.tcpOpen.Add(1)
	return true
}

func (s *Server) release(c net.Conn, ip netip.Addr) {
	c.Close()
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	delete(s.tcpConns, c)
	if s.tcpPerIP[ip]--; s.tcpPerIP[ip] <= 0 {
		delete(s.tcpPerIP, ip)
	}
	s.tcpOpen.Add(-1)
}

// serveConn reads STUN messages framed by their own length (RFC 8489
// section 6.2.2) and answers each on the connection. Anything that is not
// a Binding request closes the connection: on a stream, framing cannot be
// trusted after garbage.
func (s *Server) serveConn(sf *servedFamily, ep int, conn *net.TCPConn, src netip.AddrPort) {
	c := s.tcpCounters
	buf := make([]byte, max(maxSTUN, rendezvous.MaxMessage))
	out := make([]byte, maxResponse)
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	for {
		_ = conn.SetReadDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := io.ReadFull(conn, buf[:headerSize]); err != nil {
			return
		}
		n := headerSize + int(binary.BigEndian.Uint16(buf[2:4]))
		c.received.Add(1)
		if rendezvous.IsMessage(buf[:headerSize]) {
			// A side whose UDP is blocked meets over TCP.
			if !s.serveRendezvousTCP(sf, ep, conn, src, buf, out) {
				return
			}
			continue
		}
		if buf[0]&0xC0 != 0 {
			c.drop(dropNotSTUN)
			return
		}
		if n > maxSTUN {
			c.drop(dropTooLarge)
			return
		}
		if _, err := io.ReadFull(conn, buf[headerSize:n]); err != nil {
			c.drop(dropNotSTUN)
			return
		}
		c.bytesIn.Add(uint64(n))
		if !s.answerTCP(conn, sf.h.handle(buf[:n], src, ep, true, s.now(), out), out) {
			return
		}
	}
}

// answerTCP writes a reply on the connection and counts it; false when
// there is none (the request is dropped, and the connection with it) or
// the write failed.
func (s *Server) answerTCP(conn *net.TCPConn, rep reply, out []byte) bool {
	c := s.tcpCounters
	if rep.n == 0 {
		c.drop(rep.drop)
		return false
	}
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdle))
	if _, err := conn.Write(out[:rep.n]); err != nil {
		c.drop(dropSendError)
		return false
	}
	c.sent(rep.kind, rep.n)
	return true
}

// serveRendezvousTCP reads the rest of a rendezvous request whose first
// headerSize bytes are in buf and answers it on the connection; false
// ends the connection (malformed, refused, or a write that failed).
func (s *Server) serveRendezvousTCP(sf *servedFamily, ep int, conn *net.TCPConn, src netip.AddrPort, buf, out []byte) bool {
	c := s.tcpCounters
	n, ok := rendezvous.ReadRequest(conn, buf, headerSize)
	if !ok {
		c.drop(dropMalformed)
		return false
	}
	c.bytesIn.Add(uint64(n))
	return s.answerTCP(conn, sf.h.rendezvous(buf[:n], src, ep, true, s.now(), out), out)
}

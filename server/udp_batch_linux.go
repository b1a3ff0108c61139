package server

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The batch path calls recvmmsg and sendmmsg itself. golang.org/x/net's
// ipv4.PacketConn.ReadBatch does the same system call but allocates a
// net.UDPAddr and its IP for every datagram; here every buffer, iovec and
// sockaddr is allocated once per worker.

const (
	batchSupported = true
	msgTrunc       = unix.MSG_TRUNC
)

// mmsghdr mirrors struct mmsghdr; Go's padding matches C's on 32- and
// 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

type batchState struct {
	rxBuf   []byte
	rxNames []unix.RawSockaddrInet6
	rxIov   []unix.Iovec
	rxHdrs  []mmsghdr
	txBuf   []byte
	txNames []unix.RawSockaddrInet6
	txIov   []unix.Iovec
	txHdrs  [4][]mmsghdr
	txKind  [4][]replyKind
	txCount [4]int

	// Arguments and results of the system call closures, which are built
	// once so that passing them to RawConn does not allocate.
	sendHdrs []mmsghdr
	got      int
	errno    syscall.Errno
	recvFn   func(fd uintptr) bool
	sendFn   func(fd uintptr) bool
}

func newBatchState(b int) *batchState {
	st := &batchState{
		rxBuf:   make([]byte, b*rxSize),
		rxNames: make([]unix.RawSockaddrInet6, b),
		rxIov:   make([]unix.Iovec, b),
		rxHdrs:  make([]mmsghdr, b),
		txBuf:   make([]byte, b*maxResponse),
		txNames: make([]unix.RawSockaddrInet6, b),
		txIov:   make([]unix.Iovec, b),
	}
	for i := range st.txHdrs {
		st.txHdrs[i] = make([]mmsghdr, b)
		st.txKind[i] = make([]replyKind, b)
	}
	for i := 0; i < b; i++ {
		st.rxIov[i].Base = &st.rxBuf[i*rxSize]
		st.rxIov[i].SetLen(rxSize)
		st.rxHdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&st.rxNames[i]))
		st.rxHdrs[i].hdr.Iov = &st.rxIov[i]
		st.rxHdrs[i].hdr.SetIovlen(1)
		st.txIov[i].Base = &st.txBuf[i*maxResponse]
	}
	st.recvFn = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&st.rxHdrs[0])), uintptr(len(st.rxHdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for the poller, then try again
		}
		st.got, st.errno = int(r), e
		return true
	}
	st.sendFn = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&st.sendHdrs[0])), uintptr(len(st.sendHdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		st.got, st.errno = int(r), e
		return true
	}
	return st
}

func (s *Server) udpLoopBatch(sf *servedFamily, w, ep int, c *counters) {
	rc, err := sf.udp[w][ep].SyscallConn()
	if err != nil {
		s.udpLoopSimple(sf, w, ep, c)
		return
	}
	var wrc [4]syscall.RawConn
	for i := 0; i < sf.nEps; i++ {
		if wrc[i], err = sf.udp[w][i].SyscallConn(); err != nil {
			s.udpLoopSimple(sf, w, ep, c)
			return
		}
	}
	st := newBatchState(s.cfg.Batch)
	for {
		for i := range st.rxHdrs {
			st.rxHdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
			st.rxHdrs[i].hdr.Flags = 0
		}
		if err := rc.Read(st.recvFn); err != nil {
			s.socketGone("udp", sf.fam.ep[ep], err) // only shutdown may close it
			return
		}
		if st.errno != 0 {
			s.cfg.Logf("udp recvmmsg on %s: %v", sf.fam.ep[ep], st.errno)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := s.now()
		st.txCount = [4]int{}
		for i := 0; i < st.got; i++ {
			s.handleOne(sf, st, i, ep, now, c)
		}
		for from := 0; from < sf.nEps; from++ {
			if st.txCount[from] > 0 && !s.flush(st, wrc[from], from, c) {
				s.socketGone("udp", sf.fam.ep[from], net.ErrClosed)
				return
			}
		}
	}
}

// handleOne answers received datagram i, queueing the reply on the socket
// it must leave from.
func (s *Server) handleOne(sf *servedFamily, st *batchState, i, ep int, now int64, c *counters) {
	h := &st.rxHdrs[i]
	c.received.Add(1)
	c.bytesIn.Add(uint64(h.n))
	if h.hdr.Flags&unix.MSG_TRUNC != 0 {
		c.drop(dropTooLarge)
		return
	}
	src := sockaddrToAddrPort(&st.rxNames[i])
	pkt := st.rxBuf[i*rxSize : i*rxSize+int(h.n)]
	out := st.txBuf[i*maxResponse : (i+1)*maxResponse]
	rep := sf.h.handle(pkt, src, ep, false, now, out)
	if rep.n == 0 {
		c.drop(rep.drop)
		return
	}
	// Reply to the source's own sockaddr (keeping an IPv6 scope), with the
	// port RESPONSE-PORT may have changed.
	st.txNames[i] = st.rxNames[i]
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&st.txNames[i].Port))[:], rep.to.Port())
	st.txIov[i].SetLen(rep.n)
	t := &st.txHdrs[rep.from][st.txCount[rep.from]]
	t.hdr.Name = (*byte)(unsafe.Pointer(&st.txNames[i]))
	t.hdr.Namelen = st.rxHdrs[i].hdr.Namelen
	t.hdr.Iov = &st.txIov[i]
	t.hdr.SetIovlen(1)
	st.txKind[rep.from][st.txCount[rep.from]] = rep.kind
	st.txCount[rep.from]++
}

// flush sends the replies queued for endpoint from. A datagram the kernel
// refuses is counted and skipped. It returns false once the socket is closed.
func (s *Server) flush(st *batchState, rc syscall.RawConn, from int, c *counters) bool {
	q := st.txHdrs[from][:st.txCount[from]]
	for done := 0; done < len(q); {
		st.sendHdrs = q[done:]
		if err := rc.Write(st.sendFn); err != nil {
			return false
		}
		if st.errno != 0 {
			c.drop(dropSendError)
			done++
			continue
		}
		for j := done; j < done+st.got; j++ {
			c.sent(st.txKind[from][j], int(q[j].n)) // the kernel set n to the bytes sent
		}
		done += st.got
	}
	return true
}

// sockaddrToAddrPort reads a kernel sockaddr_in or sockaddr_in6.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
}

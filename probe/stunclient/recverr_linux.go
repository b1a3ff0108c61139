//go:build linux

package stunclient

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"github.com/natcheck/natcheck/probe/nat"
	"golang.org/x/sys/unix"
)

// icmpErrors asks the kernel to report ICMP errors on pc, an unconnected
// UDP socket (IP_RECVERR, IPV6_RECVERR: without them Linux reports them
// only on connected sockets), and returns a function that reads the queued
// errors and hands each destination that answered "port unreachable" to
// refused. It returns nil when pc is not a socket of this host (a
// simulated network) or the option cannot be set: ICMP errors then go
// unnoticed, and a closed port reads as silence.
func icmpErrors(pc net.PacketConn) func(refused func(netip.AddrPort)) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var set bool
	rc.Control(func(fd uintptr) {
		// One of the two fits the socket's family; the other fails.
		e4 := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
		e6 := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
		set = e4 == nil || e6 == nil
	})
	if !set {
		return nil
	}
	return func(refused func(netip.AddrPort)) {
		buf := make([]byte, maxDatagram)
		oob := make([]byte, 512)
		for {
			var (
				oobn int
				from unix.Sockaddr
				rerr error
			)
			err := rc.Read(func(fd uintptr) bool {
				_, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
				return true // never wait: the queue is read until it is empty
			})
			if err != nil || rerr != nil {
				return // EAGAIN: the queue is empty; or the socket closed
			}
			if to, ok := refusedBy(from, oob[:oobn]); ok {
				refused(to)
			}
		}
	}
}

// refusedBy reads one message of the error queue: the destination of the
// datagram that caused it (its msg_name), and whether the error was an
// ICMP port unreachable (ECONNREFUSED from ICMP or ICMPv6).
func refusedBy(from unix.Sockaddr, oob []byte) (netip.AddrPort, bool) {
	var to netip.AddrPort
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		to = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		to = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	default:
		return to, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return to, false
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if (!v4 && !v6) || len(m.Data) < 5 {
			continue
		}
		// struct sock_extended_err: ee_errno (u32), ee_origin (u8), ...
		errno := syscall.Errno(binary.NativeEndian.Uint32(m.Data[0:4]))
		origin := m.Data[4]
		if errno == unix.ECONNREFUSED && (origin == unix.SO_EE_ORIGIN_ICMP || origin == unix.SO_EE_ORIGIN_ICMP6) {
			return nat.Unmap(to), true
		}
	}
	return to, false
}

package probe

import (
	"context"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

// maxHops is how far the TTL probe looks: a carrier NAT sits within the
// first few routers of the path.
const maxHops = 6

// ttlProbe sends Binding requests with TTL 1..maxHops (two copies each,
// against loss) from a fresh IPv4 socket with IP_RECVERR, and reads the
// ICMP time-exceeded senders from the socket's error queue: no privileges
// needed. The original payload in each error names the TTL it was sent
// with. Replies from the server itself say how far away it is.
//
// A valid from binds the socket to that local address (--bind); opened,
// when not nil, learns the socket's local address once it is known.
func ttlProbe(ctx context.Context, from netip.Addr, to netip.AddrPort, wait, rtt time.Duration, opened func(netip.AddrPort)) (hops []nat.Hop, reached int, tested bool) {
	if !to.Addr().Unmap().Is4() {
		return nil, 0, false
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, false
	}
	defer unix.Close(fd)
	if unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1) != nil {
		return nil, 0, false
	}
	if from.IsValid() {
		if !from.Unmap().Is4() || unix.Bind(fd, &unix.SockaddrInet4{Addr: from.Unmap().As4()}) != nil {
			return nil, 0, false
		}
	}
	dst := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().Unmap().As4()}
	ttlOf := map[[stun.TransactionIDSize]byte]int{}
	for rep := 0; rep < 2; rep++ {
		for ttl := 1; ttl <= maxHops; ttl++ {
			m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
			if err != nil {
				return nil, 0, false
			}
			if unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl) != nil {
				return nil, 0, false
			}
			if sendReportingErrors(fd, m.Raw, dst) {
				ttlOf[m.TransactionID] = ttl
			}
		}
	}
	if len(ttlOf) == 0 {
		return nil, 0, false
	}
	if sa, err := unix.Getsockname(fd); err == nil && opened != nil {
		if in4, ok := sa.(*unix.SockaddrInet4); ok {
			opened(netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)))
		}
	}
	seen := map[int]netip.Addr{}
	end := time.Now().Add(max(wait, 2*rtt))
	buf, oob := make([]byte, 1500), make([]byte, 512)
	for ctx.Err() == nil {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLERR}}
		if _, err := unix.Poll(pfd, int(min(left, 50*time.Millisecond)/time.Millisecond)+1); err != nil && err != unix.EINTR {
			break
		}
		// Error queue: time exceeded from routers on the path.
		for {
			n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE)
			if err != nil {
				break
			}
			if ttl, ok := ttlOf[txID(buf[:n])]; ok {
				if from, ok := icmpOffender(oob[:oobn]); ok {
					seen[ttl] = from
				}
			}
		}
		// Normal queue: the server itself answered.
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			if ttl, ok := ttlOf[txID(buf[:n])]; ok && (reached == 0 || ttl < reached) {
				reached = ttl
			}
		}
	}
	for ttl := 1; ttl <= maxHops; ttl++ {
		if a, ok := seen[ttl]; ok && (reached == 0 || ttl < reached) {
			hops = append(hops, nat.Hop{TTL: ttl, From: a})
		}
	}
	return hops, reached, true
}

// sendReportingErrors sends one datagram. With IP_RECVERR, an ICMP error
// that arrived for an earlier datagram is reported (and cleared) by the
// next send, which then sends nothing: such a send is simply repeated.
func sendReportingErrors(fd int, b []byte, to unix.Sockaddr) bool {
	for range 4 {
		err := unix.Sendto(fd, b, 0, to)
		switch err {
		case nil:
			return true
		case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ECONNREFUSED, unix.EPROTO, unix.EINTR:
			continue
		default:
			return false
		}
	}
	return false
}

func txID(b []byte) (id [stun.TransactionIDSize]byte) {
	if len(b) >= 20 {
		copy(id[:], b[8:20])
	}
	return id
}

// icmpOffender extracts the sender of an ICMP time-exceeded message from
// an IP_RECVERR control message (struct sock_extended_err followed by the
// offender's sockaddr_in).
func icmpOffender(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_RECVERR || len(m.Data) < 16+8 {
			continue
		}
		origin, typ := m.Data[4], m.Data[5]
		if origin != unix.SO_EE_ORIGIN_ICMP || typ != 11 { // ICMP time exceeded
			continue
		}
		sa := m.Data[16:]
		if binary.NativeEndian.Uint16(sa[0:2]) != unix.AF_INET {
			continue
		}
		return netip.AddrFrom4([4]byte(sa[4:8])), true
	}
	return netip.Addr{}, false
}

package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvErrCmsg builds the control message Linux attaches to an ICMP error
// on the error queue: sock_extended_err followed by the offender's address.
func recvErrCmsg(origin, icmpType byte, from [4]byte) []byte {
	data := make([]byte, 16+16)
	binary.NativeEndian.PutUint32(data[0:4], uint32(unix.EHOSTUNREACH))
	data[4], data[5] = origin, icmpType
	binary.NativeEndian.PutUint16(data[16:18], unix.AF_INET)
	copy(data[20:24], from[:])
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_RECVERR
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestICMPOffender(t *testing.T) {
	cases := []struct {
		name string
		oob  []byte
		want string
	}{
		{"time exceeded", recvErrCmsg(unix.SO_EE_ORIGIN_ICMP, 11, [4]byte{100, 64, 0, 1}), "100.64.0.1"},
		{"port unreachable is not a hop", recvErrCmsg(unix.SO_EE_ORIGIN_ICMP, 3, [4]byte{203, 0, 113, 10}), ""},
		{"local error is not a hop", recvErrCmsg(unix.SO_EE_ORIGIN_LOCAL, 11, [4]byte{192, 168, 1, 1}), ""},
		{"truncated", recvErrCmsg(unix.SO_EE_ORIGIN_ICMP, 11, [4]byte{10, 0, 0, 1})[:20], ""},
		{"empty", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := icmpOffender(c.oob)
			if c.want == "" {
				if ok {
					t.Errorf("got %s, want nothing", got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(c.want) {
				t.Errorf("got %s (%v), want %s", got, ok, c.want)
			}
		})
	}
}

func FuzzICMPOffender(f *testing.F) {
	f.Add(recvErrCmsg(unix.SO_EE_ORIGIN_ICMP, 11, [4]byte{100, 64, 0, 1}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		icmpOffender(b) // must not panic on any control message
	})
}

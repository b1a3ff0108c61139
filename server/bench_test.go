package server

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/natcheck/natcheck/internal/testutil"
)

// BenchmarkServeUDP measures whole request/answer round trips over
// loopback through the real sockets and I/O loops, one request in flight.
// Its allocs/op covers the server's receive, handle and send path (the
// client side uses allocation-free calls), so it shows the hot path
// allocates nothing per packet, system calls included.
func BenchmarkServeUDP(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := testutil.StartServer(b, Listen, Config{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Workers: 1, Batch: batch, NoTCP: true})
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Endpoints()[0]))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := buildReq(b)
			buf := make([]byte, 1500)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

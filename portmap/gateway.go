package portmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Gateway is the router port mapping is asked of, and the address this host
// uses towards it (sent as the internal client in every request).
type Gateway struct {
	Addr  netip.Addr // the default route's next hop
	Local netip.Addr // this host's source address towards Addr
	Iface string     // the route's interface; "" when unknown
}

// GatewayFinder finds the gateway. The system's default route is the real
// one; tests inject their own.
type GatewayFinder interface {
	FindGateway() (Gateway, error)
}

// ErrNoGateway means the host has no IPv4 default route via a gateway.
var ErrNoGateway = errors.New("no IPv4 default gateway")

// SystemGateway reads the IPv4 default route from the kernel's routing
// table (/proc/net/route on Linux).
type SystemGateway struct {
	// RouteFile replaces /proc/net/route (tests).
	RouteFile string
}

// FindGateway returns the default route with the lowest metric and the
// source address the kernel picks towards it.
func (s SystemGateway) FindGateway() (Gateway, error) {
	name := s.RouteFile
	if name == "" {
		name = "/proc/net/route"
	}
	f, err := os.Open(name)
	if err != nil {
		return Gateway{}, fmt.Errorf("read routing table: %w", err)
	}
	defer f.Close()
	gw, err := parseRouteTable(f)
	if err != nil {
		return Gateway{}, err
	}
	gw.Local, err = sourceAddr(gw.Addr)
	return gw, err
}

// Route flags from linux/route.h.
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// parseRouteTable picks the best IPv4 default route from the text of
// /proc/net/route, whose addresses are 32-bit words in host byte order.
func parseRouteTable(r io.Reader) (Gateway, error) {
	var best Gateway
	bestMetric := -1
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue // header, or a line we do not understand
		}
		dest, err1 := strconv.ParseUint(f[1], 16, 32)
		via, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.Atoi(f[6])
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			continue
		}
		if dest != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		if bestMetric >= 0 && metric >= bestMetric {
			continue
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(via))
		best = Gateway{Addr: netip.AddrFrom4(b), Iface: f[0]}
		bestMetric = metric
	}
	if err := sc.Err(); err != nil {
		return Gateway{}, fmt.Errorf("read routing table: %w", err)
	}
	if bestMetric < 0 {
		return Gateway{}, ErrNoGateway
	}
	return best, nil
}

// sourceAddr asks the kernel which address it would send from to reach gw:
// connecting a UDP socket picks the route and source without sending.
func sourceAddr(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, natpmpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("source address towards gateway %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// StaticGateway is a GatewayFinder that always returns itself.
type StaticGateway Gateway

// FindGateway returns g.
func (g StaticGateway) FindGateway() (Gateway, error) { return Gateway(g), nil }

package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/stun/v3"
)

// pub1 and pub2 stand for a cloud VM's public addresses; lo1 and lo2 for
// the private ones its interfaces carry.
var (
	pub1 = netip.MustParseAddr("203.0.113.20")
	pub2 = netip.MustParseAddr("203.0.113.21")
)

// advertisedOf maps each bound endpoint to the one the server advertises
// for it: the same port on the public address of its listen address.
func advertisedOf(eps []netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, len(eps))
	for i, ep := range eps {
		out[i] = netip.AddrPortFrom(map[netip.Addr]netip.Addr{lo1: pub1, lo2: pub2}[ep.Addr()], ep.Port())
	}
	return out
}

// TestAdvertiseUDP: with Advertise, RESPONSE-ORIGIN and OTHER-ADDRESS (and
// RFC 3489's SOURCE-ADDRESS and CHANGED-ADDRESS) name the public
// addresses, while every answer still leaves from the bound socket RFC
// 5780 table 1 says (a 1:1 NAT gives it the public source), and
// XOR-MAPPED-ADDRESS is still the client as seen.
func TestAdvertiseUDP(t *testing.T) {
	for _, batch := range []int{1, 32} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, Advertise: []netip.Addr{pub1, pub2}, Workers: 1, Batch: batch, NoTCP: true})
			eps := s.Endpoints()
			adv := advertisedOf(eps)
			c := udpClient(t, lo1)
			for local := range 4 {
				for _, flags := range []byte{0, changePort, changeIP, changeIP | changePort} {
					want := local
					if flags&changeIP != 0 {
						want ^= epAltIP
					}
					if flags&changePort != 0 {
						want ^= epAltPort
					}
					resp, from := exchange(t, c, eps[local], buildReq(t, changeReq(flags)))
					v := viewPion(t, decodePion(t, resp))
					if from != eps[want] || v.origin != adv[want] || v.other != adv[local^3] || v.xor != localAP(c) || v.mapped != localAP(c) {
						t.Errorf("to %v flags %#x: from %v, %+v; want from %v, origin %v, other %v", eps[local], flags, from, v, eps[want], adv[want], adv[local^3])
					}
				}
			}
			resp, from := exchange(t, c, eps[0], legacyReq(tlv(attrChangeRequest, 0, 0, 0, changeIP|changePort)))
			attrs := legacyAttrs(t, resp)
			if from != eps[3] || legacyAddr(attrs[attrMappedAddress]) != localAP(c) ||
				legacyAddr(attrs[attrSourceAddress]) != adv[3] || legacyAddr(attrs[attrChangedAddress]) != adv[3] {
				t.Errorf("RFC 3489: from %v attrs %v", from, attrs)
			}
		})
	}
}

// TestAdvertiseTCP: over TCP too the attributes name the public addresses.
func TestAdvertiseTCP(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1, lo2}, Advertise: []netip.Addr{pub1, pub2}})
	eps := s.Endpoints()
	adv := advertisedOf(eps)
	for local, ep := range eps {
		c, err := net.Dial("tcp", ep.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		me := c.LocalAddr().(*net.TCPAddr).AddrPort()
		if v := viewPion(t, decodePion(t, tcpExchange(t, c, buildReq(t)))); v.xor != me || v.origin != adv[local] || v.other != adv[local^3] {
			t.Errorf("tcp %v: %+v", ep, v)
		}
	}
}

// TestAdvertiseOneAddress: a one-address server behind a 1:1 NAT has no
// OTHER-ADDRESS; its port change names the public address.
func TestAdvertiseOneAddress(t *testing.T) {
	s := startServer(t, Config{Addrs: []netip.Addr{lo1}, Advertise: []netip.Addr{pub1}, NoTCP: true})
	eps := s.Endpoints()
	c := udpClient(t, lo1)
	resp, from := exchange(t, c, eps[0], buildReq(t, changeReq(changePort)))
	if v := viewPion(t, decodePion(t, resp)); from != eps[1] || v.other.IsValid() || v.origin != netip.AddrPortFrom(pub1, eps[1].Port()) {
		t.Errorf("change port: from %v, %+v", from, v)
	}
}

// TestAdvertiseLogged: the start-up line says what is advertised.
func TestAdvertiseLogged(t *testing.T) {
	s, err := Listen(context.Background(), Config{Addrs: []netip.Addr{lo1}, Advertise: []netip.Addr{pub1}, NoTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeSockets()
	d := s.describe()
	want := fmt.Sprintf("%v as %v", s.Endpoints()[0], netip.AddrPortFrom(pub1, s.Endpoints()[0].Port()))
	if !strings.Contains(d, want) {
		t.Errorf("describe() = %q, want it to contain %q", d, want)
	}
}

func TestAdvertiseConfigErrors(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::20")
	for _, tc := range []struct {
		name       string
		addrs, adv []netip.Addr
		msg        string
	}{
		{"fewer", []netip.Addr{lo1, lo2}, []netip.Addr{pub1}, "Advertise has 1 addresses and Addrs 2"},
		{"more", []netip.Addr{lo1}, []netip.Addr{pub1, pub2}, "Advertise has 2 addresses and Addrs 1"},
		{"family", []netip.Addr{lo1}, []netip.Addr{v6}, "cannot advertise 2001:db8::20 for 127.0.0.1: not the same address family"},
		{"family v6", []netip.Addr{lo6}, []netip.Addr{pub1}, "not the same address family"},
		{"unspecified", []netip.Addr{lo1}, []netip.Addr{netip.IPv4Unspecified()}, "cannot advertise 0.0.0.0: not a unicast address"},
		{"multicast", []netip.Addr{lo1}, []netip.Addr{netip.MustParseAddr("224.0.0.1")}, "not a unicast address"},
		{"broadcast", []netip.Addr{lo1}, []netip.Addr{netip.MustParseAddr("255.255.255.255")}, "not a unicast address"},
		{"multicast v6", []netip.Addr{lo6}, []netip.Addr{netip.MustParseAddr("ff02::1")}, "not a unicast address"},
		{"zoned", []netip.Addr{lo6}, []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}, "zoned"},
		{"invalid", []netip.Addr{lo1}, []netip.Addr{{}}, "invalid advertised address"},
		{"same twice", []netip.Addr{lo1, lo2}, []netip.Addr{pub1, pub1}, "127.0.0.1 and 127.0.0.2 are both advertised as 203.0.113.20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Listen(context.Background(), Config{Addrs: tc.addrs, Advertise: tc.adv, NoTCP: true})
			if err == nil {
				s.closeSockets()
				t.Fatal("Listen succeeded")
			}
			if _, ok := err.(*ConfigError); !ok || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %T %q, want a ConfigError saying %q", err, err, tc.msg)
			}
		})
	}
}

// TestAdvertiseMapped: an IPv4-mapped IPv6 advertised address is its IPv4
// address, and the caller's slice is left alone.
func TestAdvertiseMapped(t *testing.T) {
	adv := []netip.Addr{netip.AddrFrom16(pub1.As16())}
	s := startServer(t, Config{Addrs: []netip.Addr{lo1}, Advertise: adv, NoTCP: true})
	c := udpClient(t, lo1)
	resp, _ := exchange(t, c, s.Endpoints()[0], buildReq(t, stun.Fingerprint))
	if v := viewPion(t, decodePion(t, resp)); v.origin != netip.AddrPortFrom(pub1, s.Endpoints()[0].Port()) {
		t.Errorf("origin %v", v.origin)
	}
	if !adv[0].Is4In6() {
		t.Error("Listen changed the caller's Advertise slice")
	}
}

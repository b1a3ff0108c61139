package lab

import (
	"net"
)

// Do runs fn on an OS thread switched into namespace ns, then switches the
// thread back. Sockets fn creates stay in ns for their whole life and can be
// used from any goroutine afterwards. Goroutines fn starts do NOT run in ns.
func (l *Lab) Do(ns string, fn func() error) error {
	return inNamespace(ns, fn)
}

// ListenUDP opens a UDP socket inside namespace ns, bound to addr
// ("203.0.113.10:3478", ":0", ...). It is closed at test cleanup if the
// caller has not closed it.
func (l *Lab) ListenUDP(ns string, addr string) (*net.UDPConn, error) {
	return l.listenUDP(ns, "udp4", addr)
}

// listenUDP is ListenUDP and ListenUDP6 for network "udp4" or "udp6".
func (l *Lab) listenUDP(ns, network, addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, err
	}
	var c *net.UDPConn
	err = l.Do(ns, func() (err error) {
		c, err = net.ListenUDP(network, ua)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { c.Close() })
	return c, nil
}

// ListenPacket is net.ListenPacket inside namespace ns (e.g. "ip4:icmp" to
// watch ICMP errors; the lab runs as root). Closed at test cleanup.
func (l *Lab) ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := l.Do(ns, func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { c.Close() })
	return c, nil
}

// Listen is net.Listen inside namespace ns (e.g. a TCP server). Closed at
// test cleanup.
func (l *Lab) Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { ln.Close() })
	return ln, nil
}

// Dial is net.Dialer.Dial inside namespace ns, with the dialer's timeout.
// Closed at test cleanup.
func (l *Lab) Dial(ns string, d *net.Dialer, network, addr string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var c net.Conn
	err := l.Do(ns, func() (err error) {
		c, err = d.Dial(network, addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { c.Close() })
	return c, nil
}

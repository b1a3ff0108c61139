package lab

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into namespace ns, then switches the
// thread back. Sockets fn creates stay in ns for their whole life and can be
// used from any goroutine afterwards. Goroutines fn starts do NOT run in ns.
func (l *Lab) Do(ns string, fn func() error) error {
	return inNamespace(ns, fn)
}

func inNamespace(ns string, fn func() error) error {
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer unix.Close(target)

	errc := make(chan error, 1)
	// A fresh goroutine keeps the caller's thread untouched; it locks its
	// own thread for the duration.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: when this goroutine ends the runtime
			// destroys the thread instead of reusing it in the wrong namespace.
			errc <- fmt.Errorf("leave namespace %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
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

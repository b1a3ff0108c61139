//go:build linux

// Command labwire relays Ethernet frames between two interfaces with a fixed one-way delay (the NAT lab's netem substitute).
//
// It runs inside the lab's "wire" namespace, between the router's WAN veth
// and the internet's veth. Frames, ARP included, pass unchanged, so the
// relay is transparent: it only adds time. Each frame is read with the
// kernel's virtio-net header (PACKET_VNET_HDR) and written back with it, so
// packets whose checksum or segmentation was left to the "hardware" by the
// veth stay valid on the other side without touching their bytes.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	a := flag.String("a", "", "first interface")
	b := flag.String("b", "", "second interface")
	delay := flag.Duration("delay", 0, "one-way delay added to every frame")
	flag.Parse()
	if *a == "" || *b == "" || *delay < 0 {
		fmt.Fprintln(os.Stderr, "usage: labwire -a IFACE -b IFACE -delay DURATION")
		os.Exit(2)
	}
	fa, err := open(*a)
	if err != nil {
		fatal(err)
	}
	fb, err := open(*b)
	if err != nil {
		fatal(err)
	}
	go relay(fa, fb, *delay)
	go relay(fb, fa, *delay)
	fmt.Println("ready")
	// The lab holds our stdin open; when it closes (the test process ended
	// or cleaned up), there is nobody left to relay for.
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "labwire:", err)
	os.Exit(1)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// open returns a raw packet socket bound to ifname that sees only frames
// arriving on it (not the ones we send out of it).
func open(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	for _, o := range []struct {
		level, name, val int
	}{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4 << 20},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4 << 20},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.val); err != nil {
			return -1, fmt.Errorf("setsockopt %d/%d on %s: %w", o.level, o.name, ifname, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		return -1, fmt.Errorf("bind %s: %w", ifname, err)
	}
	return fd, nil
}

type frame struct {
	due  time.Time
	data []byte
}

// relay copies frames from src to dst, each sent delay after it arrived.
// Arrival times are taken as frames are read, so a slow writer does not add
// to later frames' delay; order is kept because the delay is constant.
func relay(src, dst int, delay time.Duration) {
	q := make(chan frame, 16384)
	go func() {
		buf := make([]byte, 1<<16+64)
		for {
			n, err := unix.Read(src, buf)
			if err != nil {
				if err == unix.EINTR || err == unix.EAGAIN {
					continue
				}
				fatal(fmt.Errorf("read: %w", err))
			}
			q <- frame{due: time.Now().Add(delay), data: append([]byte(nil), buf[:n]...)}
		}
	}()
	for f := range q {
		if d := time.Until(f.due); d > 0 {
			time.Sleep(d)
		}
		// A failed write is a lost frame, as on a real wire.
		_, _ = unix.Write(dst, f.data)
	}
}

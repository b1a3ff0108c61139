package turncheck

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// refreshProxy relays UDP between clients and a TURN server, but hands
// every Refresh request that asks for a lifetime (not a deletion) to
// answer: a reply to send back in the server's place, or nil to drop it.
func refreshProxy(t *testing.T, server string, answer func(req *stun.Message) *stun.Message) string {
	t.Helper()
	front, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	backs := map[string]net.PacketConn{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		front.Close()
		mu.Lock()
		for _, b := range backs {
			b.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if stun.IsMessage(buf[:n]) && m.Decode() == nil && m.Type == stun.NewType(stun.MethodRefresh, stun.ClassRequest) {
				if v, err := m.Get(stun.AttrLifetime); err == nil && string(v) != "\x00\x00\x00\x00" {
					if r := answer(m); r != nil {
						_, _ = front.WriteTo(r.Raw, from)
					}
					continue
				}
			}
			mu.Lock()
			back, ok := backs[from.String()]
			if !ok {
				back, err = net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					mu.Unlock()
					return
				}
				backs[from.String()] = back
				wg.Add(1)
				go func(from net.Addr) {
					defer wg.Done()
					b := make([]byte, 1500)
					for {
						n, _, err := back.ReadFrom(b)
						if err != nil {
							return
						}
						_, _ = front.WriteTo(b[:n], from)
					}
				}(from)
			}
			mu.Unlock()
			_, _ = back.WriteTo(buf[:n], to)
		}
	}()
	return front.LocalAddr().String()
}

func TestRefreshRefused(t *testing.T) {
	srv := startServer(t, serverOpts{})
	mismatch := refreshProxy(t, srv.UDP, func(req *stun.Message) *stun.Message {
		r, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.NewType(stun.MethodRefresh, stun.ClassErrorResponse),
			stun.CodeAllocMismatch, stun.Fingerprint)
		if err != nil {
			t.Error(err)
		}
		return r
	})
	silent := refreshProxy(t, srv.UDP, func(*stun.Message) *stun.Message { return nil })
	for _, tc := range []struct {
		name, addr string
		code       int
		cause      string
	}{
		{"437", mismatch, 437, "no longer knows the allocation (437"},
		{"silent", silent, 0, "never answered the Refresh"},
	} {
		r := check(t, "turn:"+tc.addr, Options{Packets: 3}, 2*time.Second)
		if r.Verdict != Failed || r.FailedStep != StepRefresh || r.ErrorCode != tc.code || !strings.Contains(r.Cause, tc.cause) {
			t.Errorf("%s: %s at %s code %d (%s), steps %s", tc.name, r.Verdict, r.FailedStep, r.ErrorCode, r.Cause, steps(r))
		}
		if r.Packets == nil || r.Packets.Received != 3 || r.Refreshed != 0 {
			t.Errorf("%s: packets %+v refreshed %v: the data step should have passed", tc.name, r.Packets, r.Refreshed)
		}
	}
}

// An IPv6 literal server: pion's client dials it with natcheck's socket.
func TestIPv6Server(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	srv := startServer(t, serverOpts{ip: "::1"})
	for _, s := range []string{"turn:" + srv.UDP, "turn:" + srv.TCP + "?transport=tcp", "turns:" + srv.TLS} {
		r := check(t, s, Options{Packets: 3, RootCAs: srv.CA}, 5*time.Second)
		if r.Verdict != Works || !r.Address.Addr().Is6() || !r.Reflexive.Addr().Is6() {
			t.Errorf("%s: %s (%s) address %v reflexive %v, steps %s", s, r.Verdict, r.Cause, r.Address, r.Reflexive, steps(r))
		}
	}
}

// Run completes a silent UDP server's cause with the TCP URI of the same
// host that works.
func TestRunComparesTransports(t *testing.T) {
	srv := startServer(t, serverOpts{})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udp, tcp := uri(t, "turn:"+pc.LocalAddr().String()), uri(t, "turn:"+srv.TCP+"?transport=tcp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rs := Run(ctx, []URI{udp, tcp}, Options{User: "alice", Password: "s3cret-pass", Packets: 3})
	if rs[1].Verdict != Works || rs[0].Verdict != Unreachable || !strings.Contains(rs[0].Cause, "but "+tcp.Raw+" works: UDP is blocked on the path") {
		t.Errorf("udp: %s (%s); tcp: %s (%s)", rs[0].Verdict, rs[0].Cause, rs[1].Verdict, rs[1].Cause)
	}
}

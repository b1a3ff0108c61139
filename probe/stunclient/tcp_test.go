package stunclient

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func TestTCPBindingRejectsForeignReplies(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		c.Read(buf)
		m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(1, 2, 3, 4), Port: 5})
		c.Write(m.Raw) // a fresh transaction ID: not an answer to ours
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, c := TCPBinding(ctx, IPv4, netip.AddrPort{}, AddrPortOf(ln.Addr()))
	if c != nil {
		c.Close()
	}
	if r.OK() || r.Err == nil {
		t.Errorf("accepted a reply to another transaction: %+v", r)
	}
}

func FuzzReadBindingResponse(f *testing.F) {
	m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(1, 2, 3, 4), Port: 5}, stun.Fingerprint)
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	f.Add(m.Raw)
	f.Add(req.Raw)
	f.Add([]byte{0, 1, 0xff, 0xfc})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := readBindingResponse(bytes.NewReader(b))
		if err == nil && (msg == nil || msg.Type.Method != stun.MethodBinding || msg.Type.Class == stun.ClassRequest) {
			t.Fatalf("accepted something other than a Binding response: %v", msg)
		}
	})
}

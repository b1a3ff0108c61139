package peer

import (
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/probe/turncheck"
)

func mustURI(t *testing.T, s string) turncheck.URI {
	t.Helper()
	u, err := turncheck.ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRelayDialer: a turns: server on loopback (httptest's TLS listener:
// only the handshake counts) is refused without its CA, with the cause in
// turncheck's words, and accepted with it or with Insecure; a closed port
// is named too; a plain TCP server is dialed without TLS.
func TestRelayDialer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tlsURI := mustURI(t, "turns:"+addr)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	d, err := newRelayDialer([]turncheck.URI{tlsURI}, turncheck.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Dial("udp4", addr); err == nil {
		c.Close()
		t.Fatal("dialed a server whose CA is not given")
	}
	if p := d.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], "turns:"+addr+": ") || !strings.Contains(p[0], "unknown authority") {
		t.Errorf("problems %q, want the server and an unknown authority", p)
	}
	for name, o := range map[string]turncheck.Options{"ca": {RootCAs: pool}, "insecure": {Insecure: true}} {
		d, _ := newRelayDialer([]turncheck.URI{tlsURI}, o, nil)
		c, err := d.Dial("udp4", addr)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		c.Close()
		if p := d.Problems(); len(p) != 0 {
			t.Errorf("%s: problems %q", name, p)
		}
	}

	// A closed port: refused at once, named.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	d, _ = newRelayDialer([]turncheck.URI{mustURI(t, "turn:"+closed+"?transport=tcp")}, turncheck.Options{}, nil)
	if _, err := d.Dial("udp4", closed); err == nil {
		t.Fatal("dialed a closed port")
	}
	if p := d.Problems(); len(p) != 1 || !strings.Contains(p[0], "could not reach the server") {
		t.Errorf("closed port: problems %q", p)
	}

	// Plain TCP: the connection is not wrapped.
	d, _ = newRelayDialer([]turncheck.URI{mustURI(t, "turn:"+addr+"?transport=tcp")}, turncheck.Options{}, nil)
	c, err := d.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("plain TCP dial gave %T", c)
	}
	c.Close()
	if _, err := d.Dial("udp4", "127.0.0.1:1"); err == nil {
		t.Error("dialed an address that is no TURN server given")
	}
}

// TestCheckTURN: one host:port with and without TLS is refused (the
// dialer is asked by address only); UDP beside TLS at one address is not.
func TestCheckTURN(t *testing.T) {
	ok := []string{"turn:192.0.2.1:3478", "turns:192.0.2.1:3478", "turn:192.0.2.1:5349?transport=tcp"}
	var us []turncheck.URI
	for _, s := range ok {
		us = append(us, mustURI(t, s))
	}
	if err := CheckTURN(us); err != nil {
		t.Errorf("%v: %v", ok, err)
	}
	bad := append(us, mustURI(t, "turns:192.0.2.1:5349"))
	if err := CheckTURN(bad); !errors.Is(err, ErrTURNConflict) || !strings.Contains(err.Error(), "with and without TLS") {
		t.Errorf("conflict: %v", err)
	}
}

package turncheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

// Server is an in-process pion/turn server on 127.0.0.1 for tests.
type testServer struct {
	UDP, TCP, TLS string // host:port of each listener
	CA            *x509.CertPool
}

type serverOpts struct {
	auth  turn.AuthHandler
	perm  turn.PermissionHandler
	relay turn.RelayAddressGenerator
	cert  func(*testing.T) (tls.Certificate, *x509.CertPool)
	ip    string // the listeners' address; 127.0.0.1 when empty
}

func authFor(user, realm, pass string) turn.AuthHandler {
	key := turn.GenerateAuthKey(user, realm, pass)
	return func(u, r string, _ net.Addr) ([]byte, bool) {
		if u != user {
			return nil, false
		}
		return key, true
	}
}

func startServer(t *testing.T, o serverOpts) testServer {
	t.Helper()
	if o.auth == nil {
		o.auth = authFor("alice", "example.org", "s3cret-pass")
	}
	if o.relay == nil {
		o.relay = &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}
	}
	if o.ip == "" {
		o.ip = "127.0.0.1"
	}
	at := net.JoinHostPort(o.ip, "0")
	pc, err := net.ListenPacket("udp", at)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", at)
	if err != nil {
		t.Fatal(err)
	}
	cert, pool := testCert(t, o.ip, time.Now().Add(time.Hour))
	if o.cert != nil {
		cert, pool = o.cert(t)
	}
	sl := tls.NewListener(mustListen(t, at), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s, err := turn.NewServer(turn.ServerConfig{
		Realm:             "example.org",
		AuthHandler:       o.auth,
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: o.relay, PermissionHandler: o.perm}},
		ListenerConfigs: []turn.ListenerConfig{
			{Listener: tl, RelayAddressGenerator: o.relay, PermissionHandler: o.perm},
			{Listener: sl, RelayAddressGenerator: o.relay, PermissionHandler: o.perm},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return testServer{UDP: pc.LocalAddr().String(), TCP: tl.Addr().String(), TLS: sl.Addr().String(), CA: pool}
}

func mustListen(t *testing.T, at string) net.Listener {
	l, err := net.Listen("tcp", at)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testCert makes a self-signed certificate for host (an IP or a name),
// valid until notAfter, and the pool that trusts it.
func testCert(t *testing.T, host string, notAfter time.Time) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func uri(t *testing.T, s string) URI {
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func check(t *testing.T, s string, o Options, timeout time.Duration) Result {
	t.Helper()
	if o.User == "" {
		o.User, o.Password = "alice", "s3cret-pass"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Check(ctx, uri(t, s), o, nil)
}

func steps(r Result) string {
	var b []string
	for _, s := range r.Steps {
		b = append(b, fmt.Sprintf("%s=%v", s.Name, s.OK))
	}
	return strings.Join(b, " ")
}

func TestWorks(t *testing.T) {
	srv := startServer(t, serverOpts{})
	for _, s := range []string{"turn:" + srv.UDP, "turn:" + srv.TCP + "?transport=tcp"} {
		r := check(t, s, Options{Packets: 10}, 5*time.Second)
		if r.Verdict != Works || r.Packets == nil || r.Packets.Received != 10 {
			t.Fatalf("%s: %s (%s) %+v, steps %s", s, r.Verdict, r.Cause, r.Packets, steps(r))
		}
		if want := "reach=true auth=true allocate=true permission=true channel-bind=true data=true refresh=true delete=true"; steps(r) != want {
			t.Errorf("%s: steps %s, want %s", s, steps(r), want)
		}
		if r.Realm != "example.org" || !r.Relayed.IsValid() || !r.Reflexive.IsValid() || r.Lifetime == 0 || r.Refreshed != r.Lifetime {
			t.Errorf("%s: realm %q relayed %v reflexive %v lifetime %v refreshed %v", s, r.Realm, r.Relayed, r.Reflexive, r.Lifetime, r.Refreshed)
		}
	}
}

func TestTLS(t *testing.T) {
	srv := startServer(t, serverOpts{})
	r := check(t, "turns:"+srv.TLS, Options{RootCAs: srv.CA, Packets: 5}, 5*time.Second)
	if r.Verdict != Works {
		t.Fatalf("%s (%s), steps %s", r.Verdict, r.Cause, steps(r))
	}
	r = check(t, "turns:"+srv.TLS, Options{Packets: 5}, 5*time.Second)
	if r.Verdict != Failed || r.FailedStep != StepTLS || !strings.Contains(r.Cause, "certificate") || !strings.Contains(r.Cause, "unknown authority") {
		t.Fatalf("untrusted: %s %s (%s)", r.Verdict, r.FailedStep, r.Cause)
	}
	r = check(t, "turns:"+srv.TLS, Options{Insecure: true, Packets: 5}, 5*time.Second)
	if r.Verdict != Works {
		t.Fatalf("--insecure: %s (%s)", r.Verdict, r.Cause)
	}
	for name, mk := range map[string]func(*testing.T) (tls.Certificate, *x509.CertPool){
		"expired": func(t *testing.T) (tls.Certificate, *x509.CertPool) {
			return testCert(t, "127.0.0.1", time.Now().Add(-time.Hour))
		},
		"name": func(t *testing.T) (tls.Certificate, *x509.CertPool) {
			return testCert(t, "turn.example.org", time.Now().Add(time.Hour))
		},
	} {
		srv := startServer(t, serverOpts{cert: mk})
		r := check(t, "turns:"+srv.TLS, Options{RootCAs: srv.CA}, 5*time.Second)
		if r.FailedStep != StepTLS || !strings.Contains(r.Cause, "certificate") || !strings.Contains(r.Cause, name) {
			t.Errorf("%s: %s %s (%s)", name, r.Verdict, r.FailedStep, r.Cause)
		}
	}
}

func TestFailures(t *testing.T) {
	deny := startServer(t, serverOpts{perm: func(net.Addr, net.IP) bool { return false }})
	reject := startServer(t, serverOpts{auth: func(string, string, net.Addr) ([]byte, bool) { return nil, false }})
	blackhole := startServer(t, serverOpts{relay: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("192.0.2.1"), Address: "127.0.0.1"}})
	for _, tc := range []struct {
		name, uri string
		o         Options
		verdict   Verdict
		step      StepName
		code      int
		cause     string
	}{
		{"wrong password", "turn:" + deny.UDP, Options{User: "alice", Password: "wrong"}, Failed, StepAuth, 400, "wrong user or password"},
		{"REST expired", "turn:" + deny.UDP, Options{User: "1:alice", Password: "x", REST: true}, Failed, StepAuth, 400,
			"the credentials expired at 1970-01-01T00:00:01Z by this host's clock"},
		{"REST expired: pion's nonce tells its clock", "turn:" + deny.UDP, Options{User: "1:alice", Password: "x", REST: true}, Failed, StepAuth, 400,
			"the server's clock (read from its nonce, to 60 s) agrees with this host's"},
		{"REST valid but refused", "turn:" + deny.UDP, Options{User: "4102444800:alice", Password: "x", REST: true}, Failed, StepAuth, 400,
			"valid until 2100-01-01T00:00:00Z by this host's clock: if the server still refuses them, its clock or its secret differs"},
		{"auth handler rejects", "turn:" + reject.TCP + "?transport=tcp", Options{}, Failed, StepAuth, 400, "realm"},
		{"peer denied", "turn:" + deny.UDP, Options{}, Failed, StepPermission, 0, "denies that peer address"},
		{"no data", "turn:" + blackhole.UDP, Options{Packets: 5}, Failed, StepData, 0, "carries no data"},
	} {
		r := check(t, tc.uri, tc.o, 5*time.Second)
		if r.Verdict != tc.verdict || r.FailedStep != tc.step || r.ErrorCode != tc.code || !strings.Contains(r.Cause, tc.cause) {
			t.Errorf("%s: %s at %s code %d (%s), steps %s", tc.name, r.Verdict, r.FailedStep, r.ErrorCode, r.Cause, steps(r))
		}
	}
}

func TestSilentUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	start := time.Now()
	r := check(t, "turn:"+pc.LocalAddr().String(), Options{}, 700*time.Millisecond)
	if r.Verdict != Unreachable || r.FailedStep != StepReach || !strings.Contains(r.Cause, "no answer over UDP") || !strings.Contains(r.Cause, "443") {
		t.Fatalf("%s at %s (%s)", r.Verdict, r.FailedStep, r.Cause)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("took %v with a 700ms timeout", d)
	}
}

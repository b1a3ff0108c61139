package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ground truth of the lab's coturn configurations (StartCoturn), measured
// with coturn's own client, turnutils_uclient, from behind the NAT: each
// configuration that should relay does (every packet back), and each
// failure configuration fails the way it is meant to, with the error code
// natcheck turn is tested against in e2e/turn_test.go.

const (
	labUser = "alice"
	labPass = "lab-pass-7f3c"
)

// uclient runs turnutils_uclient in the client namespace: two allocations
// relaying to each other (-y, the check natcheck turn makes), n messages,
// one client without RTCP (-m 1 -c).
func uclient(t *testing.T, l *Lab, args ...string) (string, int, time.Duration) {
	t.Helper()
	return uclientFor(t, l, 30*time.Second, args...)
}

// uclientFor is uclient killed after limit (exit code -1 then).
func uclientFor(t *testing.T, l *Lab, limit time.Duration, args ...string) (string, int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	out, err := l.Command(ctx, l.Client, "turnutils_uclient", args...).CombinedOutput()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("turnutils_uclient: %v", err)
	}
	t.Logf("turnutils_uclient %s -> exit %d in %v\n%s", strings.Join(args, " "), code, took.Round(time.Millisecond), out)
	return string(out), code, took
}

var lostRe = regexp.MustCompile(`Total lost packets (\d+) `)

// relayed checks that uclient's run relayed every message: exit 0 and
// "Total lost packets 0".
func relayed(t *testing.T, out string, code int) {
	t.Helper()
	m := lostRe.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "0" {
		t.Errorf("exit %d, lost %v; want exit 0 and every packet relayed", code, m)
	}
}

func failedWith(t *testing.T, out string, code int, want string) {
	t.Helper()
	if code == 0 || !strings.Contains(out, want) {
		t.Errorf("exit %d; want a failure saying %q", code, want)
	}
}

func TestCoturnConfigs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("turnutils_uclient"); err != nil {
		t.Skip("turnutils_uclient (coturn-utils) not installed")
	}
	l := New(t, Options{Kind: PortRestrictedCone})
	users := map[string]string{labUser: labPass}
	ca := NewCA(t, "lab CA")
	good := ca.Issue(t, CertOptions{Names: []string{"turn.lab.example"}, IPs: []netip.Addr{l.ServerIPs[0]}})
	expired := ca.Issue(t, CertOptions{Names: []string{"turn.lab.example"}, IPs: []netip.Addr{l.ServerIPs[0]},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	const secret = "lab-rest-secret-91ab"

	lt := l.StartCoturn(t, CoturnOptions{Users: users, TLSPort: 5349, Cert: good})
	rest := l.StartCoturn(t, CoturnOptions{Port: 3490, Secret: secret})
	denied := l.StartCoturn(t, CoturnOptions{Port: 3500, Users: users, DeniedPeers: []string{"203.0.113.0-203.0.113.255"}})
	quota := l.StartCoturn(t, CoturnOptions{Port: 3510, Users: users, UserQuota: 1})
	capacity := l.StartCoturn(t, CoturnOptions{Port: 3520, Users: users, RelayPorts: [2]int{60000, 60000}})
	noUDPRelay := l.StartCoturn(t, CoturnOptions{Port: 3530, Users: users, NoUDPRelay: true})
	noData := l.StartCoturn(t, CoturnOptions{Port: 3540, Users: users, NoRelayData: true})
	noUDP := l.StartCoturn(t, CoturnOptions{Port: 3550, Users: users, NoUDP: true, TLSPort: 5359, Cert: good})
	private := l.StartCoturn(t, CoturnOptions{Port: 3478, Users: users, Private: true})
	external := l.StartCoturn(t, CoturnOptions{Port: 3560, Users: users, Private: true, ExternalIP: true})
	expiredTLS := l.StartCoturn(t, CoturnOptions{Port: 3570, Users: users, TLSPort: 5369, Cert: expired})
	wrongName := l.StartCoturn(t, CoturnOptions{Port: 3590, Users: users, TLSPort: 5379,
		Cert: ca.Issue(t, CertOptions{Names: []string{"other.lab.example"}})})
	other := NewCA(t, "another CA")
	silent := netip.AddrPortFrom(l.ServerIPs[0], 3580)
	l.DropUDP(t, l.Internet, silent)

	base := func(c *Coturn, extra ...string) []string {
		return append([]string{"-y", "-c", "-n", "10", "-m", "1", "-p", fmt.Sprint(c.Port)}, extra...)
	}
	cred := []string{"-u", labUser, "-w", labPass}
	cases := []struct {
		name string
		args []string
		want string // "" relays
	}{
		{"long-term", append(base(lt, cred...), lt.IP.String()), ""},
		{"long-term-tcp", append(base(lt, append(cred, "-t")...), lt.IP.String()), ""},
		{"wrong-password", append(base(lt, "-u", labUser, "-w", "not-"+labPass), lt.IP.String()), "Cannot complete Allocation"},
		{"rest", append(base(rest, "-u", labUser, "-W", secret), rest.IP.String()), ""},
		{"denied-peer", append(base(denied, cred...), denied.IP.String()), "403"},
		{"quota", append(base(quota, cred...), quota.IP.String()), "486"},
		{"capacity", append(base(capacity, cred...), capacity.IP.String()), "508"},
		{"no-udp-relay", append(base(noUDPRelay, cred...), noUDPRelay.IP.String()), "442"},
		{"no-udp-over-udp", append(base(noUDP, cred...), noUDP.IP.String()), "Connection refused"},
		{"no-relay-data", append(base(noData, cred...), noData.IP.String()), "lost"},
		{"no-udp-over-tcp", append(base(noUDP, append(cred, "-t")...), noUDP.IP.String()), ""},
		{"private", append(base(private, cred...), "-v", private.IP.String()), "relay addr: " + PrivateRelayIP.String() + ":"},
		{"external-ip", append(base(external, cred...), "-v", external.IP.String()), "relay addr: " + external.IP.String() + ":"},
	}
	// The runs wait on the network, not the CPU: all at once (t.Parallel
	// would run only GOMAXPROCS of them at a time), checked afterwards.
	type run struct {
		out  string
		code int
	}
	runs := make([]run, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i].out, runs[i].code, _ = uclient(t, l, tc.args...)
		}()
	}
	wg.Wait()
	for i, tc := range cases {
		out, code := runs[i].out, runs[i].code
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.want == "":
				relayed(t, out, code)
			case tc.want == "lost":
				// Allocations and channels succeed; nothing comes back.
				if !strings.Contains(out, "(100.000000%)") {
					t.Errorf("exit %d; want every packet lost", code)
				}
			case strings.HasPrefix(tc.want, "relay addr"):
				relayed(t, out, code)
				if !strings.Contains(out, tc.want) {
					t.Errorf("no %q in the output", tc.want)
				}
			default:
				failedWith(t, out, code, tc.want)
			}
		})
	}
	t.Run("rest-expired", func(t *testing.T) {
		t.Parallel()
		u, p := RESTCredentials(secret, labUser, time.Now().Add(-time.Hour))
		out, code, _ := uclient(t, l, append(base(rest, "-u", u, "-w", p), rest.IP.String())...)
		failedWith(t, out, code, "Cannot complete Allocation")
	})
	t.Run("rest-valid-computed", func(t *testing.T) {
		t.Parallel()
		u, p := RESTCredentials(secret, labUser, time.Now().Add(time.Hour))
		out, code, _ := uclient(t, l, append(base(rest, "-u", u, "-w", p), rest.IP.String())...)
		relayed(t, out, code)
	})
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		// Nothing answers, not even ICMP: uclient is still waiting after 3 s.
		_, code, _ := uclientFor(t, l, 3*time.Second, append([]string{"-y", "-c", "-n", "10", "-m", "1",
			"-p", fmt.Sprint(silent.Port())}, append(cred, silent.Addr().String())...)...)
		if code != -1 {
			t.Errorf("exit %d; want still running after 3 s", code)
		}
	})
	// uclient does not verify the server's certificate: Go's TLS client
	// does, the way natcheck's does.
	l.AddHosts(t, l.Client, map[string]netip.Addr{"turn.lab.example": lt.IP})
	for _, tc := range []struct {
		name string
		port int
		ca   *CA
		want string // "" verifies
	}{
		{"tls-good", lt.TLSPort, ca, ""},
		{"tls-expired", expiredTLS.TLSPort, ca, "expired"},
		{"tls-wrong-name", wrongName.TLSPort, ca, "not turn.lab.example"},
		{"tls-unknown-ca", lt.TLSPort, other, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := x509.NewCertPool()
			pem, err := os.ReadFile(tc.ca.File)
			if err != nil || !pool.AppendCertsFromPEM(pem) {
				t.Fatalf("CA file: %v", err)
			}
			conn, err := l.Dial(l.Client, &net.Dialer{Timeout: 5 * time.Second}, "tcp4", netip.AddrPortFrom(lt.IP, uint16(tc.port)).String())
			if err != nil {
				t.Fatal(err)
			}
			tc1 := tls.Client(conn, &tls.Config{ServerName: "turn.lab.example", RootCAs: pool})
			_ = tc1.SetDeadline(time.Now().Add(5 * time.Second))
			err = tc1.Handshake()
			t.Logf("TLS handshake with %s:%d: %v", lt.IP, tc.port, err)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("handshake: %v; want %q", err, tc.want)
			}
		})
	}
	// The hosts file: the name resolves in the client namespace.
	out, err := l.Command(context.Background(), l.Client, "getent", "hosts", "turn.lab.example").CombinedOutput()
	if err != nil || !strings.Contains(string(out), lt.IP.String()) {
		t.Errorf("getent hosts turn.lab.example in the client: %v %s", err, out)
	}
}

// With UDP blocked at the client's router, TURN over UDP gets no answer
// at all while TURN over TLS (TCP) relays.
func TestCoturnUDPBlocked(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("turnutils_uclient"); err != nil {
		t.Skip("turnutils_uclient (coturn-utils) not installed")
	}
	l := New(t, Options{Kind: UDPBlocked})
	ca := NewCA(t, "lab CA")
	c := l.StartCoturn(t, CoturnOptions{Users: map[string]string{labUser: labPass}, TLSPort: 5349,
		Cert: ca.Issue(t, CertOptions{Names: []string{"turn.lab.example"}})})
	cred := []string{"-u", labUser, "-w", labPass}
	t.Run("udp", func(t *testing.T) {
		t.Parallel()
		if _, code, _ := uclientFor(t, l, 3*time.Second, append([]string{"-y", "-c", "-n", "10", "-m", "1"}, append(cred, c.IP.String())...)...); code != -1 {
			t.Errorf("exit %d; want still waiting after 3 s", code)
		}
	})
	t.Run("tls", func(t *testing.T) {
		t.Parallel()
		if _, code, _ := uclient(t, l, append([]string{"-y", "-c", "-n", "10", "-m", "1", "-t", "-S", "-p", "5349"}, append(cred, c.IP.String())...)...); code != 0 {
			t.Errorf("exit %d; want 0", code)
		}
	})
}

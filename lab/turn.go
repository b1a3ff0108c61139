package lab

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TURN servers in the lab: Debian's coturn (turnserver 4.6), started with
// an empty config file and explicit options, in the internet namespace
// (the "server namespace"), so the client reaches it through its NAT. See
// docs/lab.md ("TURN relays").

// TURNRealm is the realm of every lab coturn unless CoturnOptions says
// otherwise.
const TURNRealm = "lab.example"

// PrivateRelayIP is the private address a coturn started with
// CoturnOptions.Private listens and relays on, behind a 1:1 NAT of the
// internet namespace.
var PrivateRelayIP = netip.MustParseAddr("10.0.0.10")

// CoturnOptions configure one turnserver process. The zero value is an
// open relay (no authentication) on 203.0.113.10:3478, UDP and TCP.
type CoturnOptions struct {
	// IP is the address clients use; default ServerIPs[0], or ServerIPs[1]
	// with Private.
	IP netip.Addr
	// Port is the UDP and TCP listening port (default 3478). TLSPort, if
	// not 0, serves TLS with Cert (required then).
	Port, TLSPort int
	Cert          *Cert
	// NoUDP: no UDP listener (--no-udp): TCP and TLS only.
	NoUDP bool

	// Users are long-term credentials (--lt-cred-mech, --user name:pass).
	Users map[string]string
	// Secret turns on the TURN REST scheme (--use-auth-secret
	// --static-auth-secret): username "<expiry unix time>:<user>",
	// password base64(HMAC-SHA1(secret, username)); see RESTCredentials.
	// Users and Secret are exclusive; neither: no authentication.
	Secret string
	Realm  string // default TURNRealm

	// DeniedPeers are --denied-peer-ip ranges ("a.b.c.d-e.f.g.h" or one
	// address): CreatePermission for a peer in them gets 403.
	DeniedPeers []string
	// UserQuota and TotalQuota (if > 0) cap concurrent allocations per
	// user and in all; an allocation over the cap gets 486.
	UserQuota, TotalQuota int
	// RelayPorts is the relay port range; default a range of 100 ports of
	// its own per coturn of the lab. One port: a second allocation finds
	// none free and gets 508 (insufficient capacity).
	RelayPorts [2]int
	// NoUDPRelay refuses UDP relays (--no-udp-relay): 442.
	NoUDPRelay bool
	// NoRelayData drops, in the server namespace, every UDP datagram the
	// relay ports send: allocations and permissions succeed but nothing
	// is ever relayed (a firewall in front of the relay ports).
	NoRelayData bool

	// Private runs coturn on PrivateRelayIP behind a 1:1 NAT of IP (its
	// listening and relay ports are forwarded, with hairpinning), as a
	// server in a cloud VPC or behind a home router is. Without
	// ExternalIP coturn hands out its private relayed address; with it,
	// coturn is told its public one (--external-ip public/private).
	Private, ExternalIP bool

	Extra []string // more turnserver options
}

// Coturn is a running turnserver of the lab.
type Coturn struct {
	IP               netip.Addr // the address clients use
	Port, TLSPort    int        // Port: TCP, and UDP unless NoUDP; TLSPort: TLS, 0 if none
	UDP              bool       // listens on UDP Port (not NoUDP)
	Realm            string
	RelayIP          netip.Addr // the address it relays on (PrivateRelayIP with Private)
	MinPort, MaxPort int        // relay port range
	Cmd              *exec.Cmd
}

// Addr is IP:Port.
func (c *Coturn) Addr() netip.AddrPort { return netip.AddrPortFrom(c.IP, uint16(c.Port)) }

// TLSAddr is IP:TLSPort.
func (c *Coturn) TLSAddr() netip.AddrPort { return netip.AddrPortFrom(c.IP, uint16(c.TLSPort)) }

var (
	coturnMu    sync.Mutex
	coturnCount = map[*Lab]int{} // relay port ranges handed out per lab
)

// RequireCoturn skips t (fails it with NATCHECK_LAB=1) unless coturn's
// turnserver is installed.
func RequireCoturn(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("turnserver"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("turnserver (Debian package coturn) not installed")
		}
		t.Skip("turnserver (Debian package coturn) not installed")
	}
}

// StartCoturn starts one coturn in the internet namespace and waits until
// its listeners are bound. It is killed at test cleanup; its log (stdout)
// is printed if the test failed. Several may run in one lab on different
// ports.
func (l *Lab) StartCoturn(t testing.TB, o CoturnOptions) *Coturn {
	t.Helper()
	RequireCoturn(t)
	if len(o.Users) > 0 && o.Secret != "" {
		t.Fatal("lab: coturn with both Users and Secret")
	}
	if o.TLSPort != 0 && o.Cert == nil {
		t.Fatal("lab: coturn TLSPort without Cert")
	}
	if o.ExternalIP && !o.Private {
		t.Fatal("lab: coturn ExternalIP without Private")
	}
	c := &Coturn{IP: o.IP, Port: o.Port, TLSPort: o.TLSPort, UDP: !o.NoUDP, Realm: o.Realm}
	if c.Port == 0 {
		c.Port = 3478
	}
	if c.Realm == "" {
		c.Realm = TURNRealm
	}
	if !c.IP.IsValid() {
		c.IP = l.ServerIPs[0]
		if o.Private {
			c.IP = l.ServerIPs[1]
		}
	}
	c.RelayIP = c.IP
	if o.Private {
		c.RelayIP = PrivateRelayIP
	}
	c.MinPort, c.MaxPort = o.RelayPorts[0], o.RelayPorts[1]
	if c.MinPort == 0 {
		coturnMu.Lock()
		n := coturnCount[l]
		coturnCount[l]++
		coturnMu.Unlock()
		c.MinPort, c.MaxPort = 50000+100*n, 50000+100*n+99
		if c.MaxPort > 65535 {
			t.Fatal("lab: too many coturn servers in one lab")
		}
		t.Cleanup(func() {
			coturnMu.Lock()
			delete(coturnCount, l)
			coturnMu.Unlock()
		})
	}

	if o.Private {
		if err := l.privateServerNAT(c); err != nil {
			t.Fatalf("lab: NAT in front of coturn: %v", err)
		}
	}
	if o.NoRelayData {
		rules := fmt.Sprintf(`table ip nclab_norelay_%d {
	chain out {
		type filter hook output priority filter;
		ip saddr %s udp sport %d-%d drop
	}
}
`, c.MinPort, c.RelayIP, c.MinPort, c.MaxPort)
		if err := l.nft(l.Internet, rules); err != nil {
			t.Fatalf("lab: %v", err)
		}
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "turnserver.conf") // never the packaged config
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", empty, "-n", "--no-cli", "--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"),
		// Its own user database: not the shared /var/lib/turn/turndb.
		"--userdb", filepath.Join(dir, "turndb"),
		"--listening-ip", c.RelayIP.String(), "--relay-ip", c.RelayIP.String(),
		"--listening-port", fmt.Sprint(c.Port),
		"--min-port", fmt.Sprint(c.MinPort), "--max-port", fmt.Sprint(c.MaxPort),
		"--no-rfc5780", "--no-dtls", "--realm", c.Realm}
	if o.TLSPort != 0 {
		args = append(args, "--tls-listening-port", fmt.Sprint(o.TLSPort), "--cert", o.Cert.File, "--pkey", o.Cert.KeyFile)
	} else {
		args = append(args, "--no-tls")
	}
	if o.NoUDP {
		args = append(args, "--no-udp")
	}
	switch {
	case len(o.Users) > 0:
		args = append(args, "--lt-cred-mech")
		names := make([]string, 0, len(o.Users))
		for u := range o.Users {
			names = append(names, u)
		}
		slices.Sort(names)
		for _, u := range names {
			args = append(args, "--user", u+":"+o.Users[u])
		}
	case o.Secret != "":
		args = append(args, "--use-auth-secret", "--static-auth-secret", o.Secret)
	default:
		args = append(args, "--no-auth")
	}
	for _, r := range o.DeniedPeers {
		args = append(args, "--denied-peer-ip="+r)
	}
	if o.UserQuota > 0 {
		args = append(args, "--user-quota", fmt.Sprint(o.UserQuota))
	}
	if o.TotalQuota > 0 {
		args = append(args, "--total-quota", fmt.Sprint(o.TotalQuota))
	}
	if o.NoUDPRelay {
		args = append(args, "--no-udp-relay")
	}
	if o.ExternalIP {
		args = append(args, "--external-ip", c.IP.String()+"/"+c.RelayIP.String())
	}
	args = append(args, o.Extra...)
	c.Cmd = l.Start(t, l.Internet, "turnserver", args...)

	var udp, tcp []int
	if c.UDP {
		udp = append(udp, c.Port)
	}
	tcp = append(tcp, c.Port)
	if o.TLSPort != 0 {
		tcp = append(tcp, o.TLSPort)
	}
	if err := l.waitPorts(l.Internet, "udp", 10*time.Second, udp...); err != nil {
		t.Fatalf("coturn: %v", err)
	}
	if err := l.waitPorts(l.Internet, "tcp", 10*time.Second, tcp...); err != nil {
		t.Fatalf("coturn: %v", err)
	}
	return c
}

// privateServerNAT puts PrivateRelayIP on the internet namespace's
// loopback and forwards c.IP's listening and relay ports to it: inbound
// (prerouting), from the namespace itself (output: the relay reaching its
// own public relayed addresses) with the source of such hairpinned
// datagrams rewritten to c.IP, as a NAT that hairpins does.
func (l *Lab) privateServerNAT(c *Coturn) error {
	if err := l.ip(l.Internet, fmt.Sprintf("addr replace %s/32 dev lo", c.RelayIP)); err != nil {
		return err
	}
	ports := fmt.Sprintf("{ %d, %d-%d }", c.Port, c.MinPort, c.MaxPort)
	if c.TLSPort != 0 {
		ports = fmt.Sprintf("{ %d, %d, %d-%d }", c.Port, c.TLSPort, c.MinPort, c.MaxPort)
	}
	return l.nft(l.Internet, fmt.Sprintf(`table ip nclab_srvnat_%[4]d {
	chain pre {
		type nat hook prerouting priority dstnat;
		ip daddr %[1]s meta l4proto { tcp, udp } th dport %[3]s dnat to %[2]s
	}
	chain out {
		type nat hook output priority -100;
		ip daddr %[1]s meta l4proto { tcp, udp } th dport %[3]s dnat to %[2]s
	}
	chain post {
		type nat hook postrouting priority srcnat;
		ip saddr %[2]s ct original ip daddr %[1]s snat to %[1]s
	}
}
`, c.IP, c.RelayIP, ports, c.MinPort))
}

// DropUDP makes addr (in ns) a silent server: every UDP datagram to it is
// dropped on input, so nothing answers, not even ICMP port unreachable.
func (l *Lab) DropUDP(t testing.TB, ns string, addr netip.AddrPort) {
	t.Helper()
	rules := fmt.Sprintf(`table ip nclab_silent_%d {
	chain in {
		type filter hook input priority filter;
		ip daddr %s udp dport %d drop
	}
}
`, addr.Port(), addr.Addr(), addr.Port())
	if err := l.nft(ns, rules); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// RESTCredentials are TURN REST API (coturn use-auth-secret) credentials
// for user valid until expiry: username "<expiry unix time>:<user>",
// password base64(HMAC-SHA1(secret, username)). An expiry in the past
// makes credentials coturn refuses with 401.
func RESTCredentials(secret, user string, expiry time.Time) (username, password string) {
	username = fmt.Sprintf("%d:%s", expiry.Unix(), user)
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// AddHosts gives namespace ns its own /etc/hosts lines (name -> address)
// for commands run with Command (ip netns exec bind-mounts
// /etc/netns/<ns>/hosts over /etc/hosts), so a TLS server can be reached
// by the name on its certificate. Removed at cleanup.
func (l *Lab) AddHosts(t testing.TB, ns string, hosts map[string]netip.Addr) {
	t.Helper()
	if !strings.HasPrefix(ns, namePrefix) {
		t.Fatalf("lab: %q is not a lab namespace", ns)
	}
	dir := filepath.Join(etcNetns, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", hosts[n], n)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// etcNetns is where ip netns exec finds per-namespace /etc files.
const etcNetns = "/etc/netns"

// waitPorts polls ns's sockets of proto ("udp" or "tcp") until every port
// is bound.
func (l *Lab) waitPorts(ns, proto string, limit time.Duration, ports ...int) error {
	deadline := time.Now().Add(limit)
	for {
		var tab []byte
		err := l.Do(ns, func() (err error) {
			// /proc/net is the main thread's namespace; thread-self is this one's.
			tab, err = os.ReadFile("/proc/thread-self/net/" + proto)
			return err
		})
		if err != nil {
			return err
		}
		var missing []int
		for _, p := range ports {
			if !strings.Contains(string(tab), fmt.Sprintf(":%04X ", p)) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s ports %v not bound in %s after %v", proto, missing, ns, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

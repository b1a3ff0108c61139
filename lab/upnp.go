package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MiniUPnPd is Debian's miniupnpd (UPnP IGD, NAT-PMP and PCP) running on
// the lab's router (the home router of DoubleNAT), with an explicit config.
type MiniUPnPd struct {
	Router string // namespace it runs in
	Config string // path of the config file written for it
	cmd    *exec.Cmd
	l      *Lab
}

// miniupnpdTable is the nft table (family inet) miniupnpd adds its rules
// to; the lab creates it with the chains miniupnpd expects, because
// miniupnpd's nftables backend does not create them itself.
const miniupnpdTable = "miniupnpd"

// started maps a Lab to the miniupnpd it runs, so that the Lab struct
// (edited by others too) needs no field for it.
var (
	started     sync.Map // *Lab -> *MiniUPnPd
	stunStarted sync.Map // *Lab -> true once its STUN server for miniupnpd runs
)

// MiniUPnPd returns the miniupnpd started on this lab (by Options.UPnP or
// StartMiniUPnPd), nil if none.
func (l *Lab) MiniUPnPd() *MiniUPnPd {
	if m, ok := started.Load(l); ok {
		return m.(*MiniUPnPd)
	}
	return nil
}

// StartMiniUPnPd starts miniupnpd on the router and waits until it serves
// SSDP and NAT-PMP/PCP. It is stopped at test cleanup, or earlier by Stop.
// Without miniupnpd installed the test skips (fails with NATCHECK_LAB=1).
func (l *Lab) StartMiniUPnPd(t testing.TB) *MiniUPnPd {
	t.Helper()
	if _, err := exec.LookPath("miniupnpd"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("miniupnpd not installed (Debian package miniupnpd-nftables)")
		}
		t.Skip("miniupnpd not installed (Debian package miniupnpd-nftables)")
	}
	// The chains below are nft's; Debian's iptables build would need others.
	if out, _ := exec.Command("miniupnpd", "--version").CombinedOutput(); !strings.Contains(string(out), "nftables") {
		msg := "miniupnpd is not the nftables build (install miniupnpd-nftables): " + strings.TrimSpace(string(out))
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err := l.nft(l.Router, miniupnpdRuleset()); err != nil {
		t.Fatalf("miniupnpd chains: %v", err)
	}
	dir := t.TempDir()
	m := &MiniUPnPd{Router: l.Router, Config: filepath.Join(dir, "miniupnpd.conf"), l: l}
	conf := miniupnpdConfig(netip.PrefixFrom(l.Gateway, 24).Masked())
	if l.Carrier == "" {
		// miniupnpd refuses to map ports while its WAN address is private
		// or reserved, and the lab's "public" 203.0.113.0/24 is reserved
		// (documentation). With STUN it learns that nothing filters in
		// front of it and takes the STUN-mapped address as its own. The
		// home router of DoubleNAT gets no STUN: behind the carrier's
		// filtering it would stay refused anyway, and without STUN it
		// keeps reporting its real WAN address 100.64.0.2 (PCP), as a
		// router behind a carrier NAT does.
		stun := l.startSTUNForMiniUPnPd(t, dir)
		conf += fmt.Sprintf("ext_perform_stun=yes\next_stun_host=%s\next_stun_port=%d\n", stun.Addr(), stun.Port())
	}
	if err := os.WriteFile(m.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -d: foreground, log to stderr (kept by Start for failed tests).
	// -P: a pid file per lab, or parallel labs would see each other's
	// miniupnpd as "already running".
	m.cmd = l.Start(t, l.Router, "miniupnpd", "-d", "-f", m.Config, "-P", filepath.Join(dir, "miniupnpd.pid"))
	started.Store(l, m)
	t.Cleanup(func() { started.CompareAndDelete(l, m) })
	if err := m.waitListening(5 * time.Second); err != nil {
		t.Fatalf("miniupnpd in %s: %v", l.Router, err)
	}
	return m
}

// Stop ends miniupnpd (SIGTERM, so it removes its rules) and waits for it.
// The chains the lab made for it stay, empty.
func (m *MiniUPnPd) Stop(t testing.TB) {
	t.Helper()
	if m.cmd.ProcessState != nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
}

// Ruleset is the router's nft table of miniupnpd: its port-mapping rules
// (DNAT in prerouting_miniupnpd, accepts in the miniupnpd chain).
func (m *MiniUPnPd) Ruleset(t testing.TB) string {
	t.Helper()
	out, err := m.l.Command(context.Background(), m.Router, "nft", "list", "table", "inet", miniupnpdTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table inet %s in %s: %v: %s", miniupnpdTable, m.Router, err, out)
	}
	return string(out)
}

// miniupnpdSTUNPort is where the lab's STUN server for miniupnpd listens
// (and one above, coturn's alternate port), apart from the 3478 tests use.
const miniupnpdSTUNPort = 34780

// startSTUNForMiniUPnPd runs coturn as an RFC 5780 STUN server (two
// addresses, CHANGE-REQUEST honoured) in the internet namespace, which
// miniupnpd's filtering test needs, and waits until it listens.
func (l *Lab) startSTUNForMiniUPnPd(t testing.TB, dir string) netip.AddrPort {
	t.Helper()
	addr := netip.AddrPortFrom(l.ServerIPs[0], miniupnpdSTUNPort)
	if _, running := stunStarted.LoadOrStore(l, true); running {
		return addr // a restarted miniupnpd reuses the lab's STUN server
	}
	t.Cleanup(func() { stunStarted.Delete(l) })
	if _, err := exec.LookPath("turnserver"); err != nil {
		if os.Getenv("NATCHECK_LAB") == "1" {
			t.Fatal("turnserver (coturn) not installed; miniupnpd needs a STUN server in the lab")
		}
		t.Skip("turnserver (coturn) not installed; miniupnpd needs a STUN server in the lab")
	}
	empty := filepath.Join(dir, "turnserver.conf") // coturn's packaged config disables RFC 5780
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l.Start(t, l.Internet, "turnserver", "-c", empty, "-S", "-n", "--no-cli", "--log-file", "stdout",
		"--simple-log", "--pidfile", filepath.Join(dir, "turnserver.pid"),
		"--listening-port", fmt.Sprint(miniupnpdSTUNPort), "-L", l.ServerIPs[0].String(), "-L", l.ServerIPs[1].String())
	if err := l.waitUDPPorts(l.Internet, 5*time.Second, miniupnpdSTUNPort, miniupnpdSTUNPort+1); err != nil {
		t.Fatalf("STUN server for miniupnpd: %v", err)
	}
	return addr
}

// waitUDPPorts polls ns's UDP sockets until every port is bound.
func (l *Lab) waitUDPPorts(ns string, limit time.Duration, ports ...int) error {
	deadline := time.Now().Add(limit)
	for {
		var udp []byte
		err := l.Do(ns, func() (err error) {
			// /proc/net is /proc/self/net, the namespace of the process's
			// main thread; thread-self is the one of this (locked) thread.
			udp, err = os.ReadFile("/proc/thread-self/net/udp")
			return err
		})
		if err != nil {
			return err
		}
		var missing []int
		for _, p := range ports {
			if !strings.Contains(string(udp), fmt.Sprintf(":%04X ", p)) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("UDP ports %v not bound in %s after %v; /proc/net/udp:\n%s", missing, ns, limit, udp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitListening waits until SSDP (1900) and NAT-PMP/PCP (5351) are bound.
func (m *MiniUPnPd) waitListening(limit time.Duration) error {
	return m.l.waitUDPPorts(m.Router, limit, 1900, 5351)
}

// miniupnpdRuleset (re)creates the table and chains named in
// miniupnpdConfig.
// Base chains accept by default: miniupnpd only adds to what the
// topology's own rules (table ip nclab) already do.
func miniupnpdRuleset() string {
	// Declaring the table empty and deleting it first makes a restart
	// (StartMiniUPnPd after Stop) start from scratch, in one transaction.
	return `table inet ` + miniupnpdTable + ` {}
delete table inet ` + miniupnpdTable + `
table inet ` + miniupnpdTable + ` {
	chain forward {
		type filter hook forward priority filter; policy accept;
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump postrouting_miniupnpd
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`
}

// miniupnpdConfig serves UPnP IGD and NAT-PMP (and PCP, which Debian's
// build serves on the NAT-PMP port) on lan0 for wan0, in secure mode (a
// client may only map to itself), to clients of lan.
func miniupnpdConfig(lan netip.Prefix) string {
	return fmt.Sprintf(`ext_ifname=wan0
listening_ip=lan0
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
min_lifetime=10
max_lifetime=86400
uuid=4e2c7a10-5d0b-4f6e-9c1a-6a7b8c9d0e1f
upnp_table_name=%[2]s
upnp_nat_table_name=%[2]s
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 %[1]s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, lan, miniupnpdTable)
}

package lab

import (
	"os"
	"strings"
	"testing"
	"time"
)

// miniupnpd runs on the home router (the carrier's inside for DoubleNAT),
// stops, and starts again on the same lab.
func TestMiniUPnPdStartStopRestart(t *testing.T) {
	for _, kind := range []Kind{PortRestrictedCone, DoubleNAT} {
		t.Run(string(kind), func(t *testing.T) {
			l := New(t, Options{Kind: kind, UPnP: true})
			m := l.MiniUPnPd()
			if m == nil || m.Router != l.Router {
				t.Fatalf("miniupnpd %+v, want one on the router %s", m, l.Router)
			}
			if rs := m.Ruleset(t); !strings.Contains(rs, "chain prerouting_miniupnpd") {
				t.Fatalf("ruleset without miniupnpd's chains:\n%s", rs)
			}
			conf, err := os.ReadFile(m.Config)
			if err != nil {
				t.Fatal(err)
			}
			// Only the single-NAT router learns its address by STUN.
			if got := strings.Contains(string(conf), "ext_perform_stun=yes"); got != (kind != DoubleNAT) {
				t.Errorf("ext_perform_stun %v for %s:\n%s", got, kind, conf)
			}
			m.Stop(t)
			if err := l.waitUDPPorts(l.Router, 100*time.Millisecond, 5351); err == nil {
				t.Error("NAT-PMP port still bound after Stop")
			}
			m2 := l.StartMiniUPnPd(t)
			if l.MiniUPnPd() != m2 {
				t.Error("MiniUPnPd does not return the restarted daemon")
			}
			if n := strings.Count(m2.Ruleset(t), "jump miniupnpd"); n != 1 {
				t.Errorf("%d jumps to the miniupnpd chain after a restart, want 1", n)
			}
		})
	}
}

package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/lab"
	"github.com/natcheck/natcheck/probe/nat"
)

// liarServer starts an RFC 5780 stuntest server misbehaving as mode on
// the lab's two server IPs, ports port and port+1, and returns its
// primary address.
func liarServer(t *testing.T, l *lab.Lab, port int, mode stuntest.Mode) netip.AddrPort {
	t.Helper()
	var conns [4]*net.UDPConn
	for i, a := range []netip.AddrPort{
		netip.AddrPortFrom(l.ServerIPs[0], uint16(port)), netip.AddrPortFrom(l.ServerIPs[0], uint16(port+1)),
		netip.AddrPortFrom(l.ServerIPs[1], uint16(port)), netip.AddrPortFrom(l.ServerIPs[1], uint16(port+1)),
	} {
		c, err := l.ListenUDP(l.Internet, a.String())
		if err != nil {
			t.Fatalf("listen %s in %s: %v", a, l.Internet, err)
		}
		conns[i] = c
	}
	// A dead address: open (no ICMP error) but silent.
	dead := testServer(t, l, l.ServerIPs[1], port+5, stuntest.Behaviour{Drop: func(int) bool { return true }})
	return stuntest.Serve5780(t, conns, mode.New(dead)).Addr
}

// TestTypeLiars: behind full-cone, restricted-cone, port-restricted-cone
// and symmetric NATs, every misbehaving server of stuntest.Modes yields
// the right verdict or unknown, never a wrong one: asked alone, and
// asked first beside three honest plain servers (whose mapping evidence
// must then decide). The topologies run in parallel labs.
func TestTypeLiars(t *testing.T) {
	lab.Require(t)
	bin := lab.BuildNatcheck(t)
	kinds := []lab.Kind{lab.FullCone, lab.RestrictedCone, lab.PortRestrictedCone, lab.Symmetric}
	var mu sync.Mutex
	table := map[string]map[lab.Kind]string{} // mode/scenario -> kind -> verdict
	t.Cleanup(func() {
		var rows []string
		for k := range table {
			rows = append(rows, k)
		}
		sort.Strings(rows)
		var b strings.Builder
		fmt.Fprintf(&b, "| server | %s |\n|---|---|---|---|---|\n", strings.Join(func() []string {
			var s []string
			for _, k := range kinds {
				s = append(s, string(k))
			}
			return s
		}(), " | "))
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s |", r)
			for _, k := range kinds {
				fmt.Fprintf(&b, " %s |", table[r][k])
			}
			b.WriteString("\n")
		}
		t.Logf("verdicts (type, mapping/filtering):\n%s", b.String())
	})
	for _, kind := range kinds {
		want := typeVerdicts[kind]
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t, lab.Options{Kind: kind})
			for i, mode := range stuntest.Modes {
				base := 20000 + 20*i
				liar := liarServer(t, l, base, mode)
				var honest []string
				for _, a := range []netip.AddrPort{
					netip.AddrPortFrom(l.ServerIPs[1], uint16(base+10)),
					netip.AddrPortFrom(l.ServerIPs[0], uint16(base+10)),
					netip.AddrPortFrom(l.ServerIPs[0], uint16(base+11)),
				} {
					honest = append(honest, testServer(t, l, a.Addr(), int(a.Port()), stuntest.Behaviour{}).String())
				}
				for _, withHonest := range []bool{false, true} {
					servers := []string{liar.String()}
					row := mode.Name + " (alone)"
					if withHonest {
						servers = append(servers, honest...)
						row = mode.Name + " (+3 honest plain)"
					}
					got := runType(t, l, bin, servers...)
					cell := fmt.Sprintf("%s (%s/%s)", got.Type, short(string(got.Mapping)), short(string(got.Filtering)))
					mu.Lock()
					if table[row] == nil {
						table[row] = map[lab.Kind]string{}
					}
					table[row][kind] = cell
					mu.Unlock()
					why := "\n  " + strings.Join(got.Evidence, "\n  ")
					if (got.Type != want.typ && got.Type != nat.TypeUnknown) ||
						(got.Mapping != want.mapping && got.Mapping != nat.MappingUnknown) ||
						(got.Filtering != want.filtering && got.Filtering != nat.FilteringUnknown) {
						t.Errorf("%s: WRONG %s, want %s (%s/%s)%s", row, cell, want.typ, want.mapping, want.filtering, why)
					}
					if mode.Name == "honest" && got.Type != want.typ {
						t.Errorf("%s: %s, want %s%s", row, cell, want.typ, why)
					}
					if got.PublicIP != "" && got.PublicIP != l.PublicIP.String() {
						t.Errorf("%s: public_ip %s, want %s%s", row, got.PublicIP, l.PublicIP, why)
					}
					if got.Hairpinning.String() == "yes" {
						t.Errorf("%s: hairpinning yes on %s", row, kind)
					}
				}
			}
		})
	}
}

// short abbreviates an RFC 4787 behaviour for the verdict table.
func short(b string) string {
	switch b {
	case nat.EndpointIndependent:
		return "EI"
	case nat.AddressDependent:
		return "AD"
	case nat.AddressAndPortDependent:
		return "APD"
	}
	return "?"
}

package lab

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// SetUDPTimeout sets the NAT's UDP mapping lifetime: the conntrack UDP
// timeouts of the router (and of the carrier in a DoubleNAT), which are per
// network namespace. unreplied is nf_conntrack_udp_timeout, which applies
// to a flow that saw one exchange (what a STUN binding leaves behind);
// stream is nf_conntrack_udp_timeout_stream, for a flow that kept
// exchanging for over two seconds. The kernel's defaults are 30 s and 120 s.
// It fails the test on error. Call it right after New.
func (l *Lab) SetUDPTimeout(unreplied, stream time.Duration) {
	l.t.Helper()
	if unreplied < time.Second || stream < time.Second {
		l.t.Fatalf("lab: conntrack timeouts have a resolution of seconds, got %v/%v", unreplied, stream)
	}
	set := map[string]time.Duration{
		"/proc/sys/net/netfilter/nf_conntrack_udp_timeout":        unreplied,
		"/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream": stream,
	}
	for _, ns := range []string{l.Router, l.Carrier} {
		if ns == "" {
			continue
		}
		err := l.Do(ns, func() error {
			for path, d := range set {
				v := strconv.Itoa(int(d / time.Second))
				if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
					return fmt.Errorf("set %s in %s: %w", path, ns, err)
				}
			}
			return nil
		})
		if err != nil {
			l.t.Fatalf("lab: %v", err)
		}
	}
}

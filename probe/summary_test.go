package probe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/probe/nat"
)

// A reply without a mapped address (the hairpin datagram itself) is
// logged without "saw invalid AddrPort".
func TestSummaryWithoutMappedAddress(t *testing.T) {
	got := summary(nat.TestResult{Name: nat.TestHairpin, Replied: true, From: netip.MustParseAddrPort("127.0.0.1:5000")})
	if strings.Contains(got, "invalid") || !strings.HasPrefix(got, "hairpin: reply from 127.0.0.1:5000") {
		t.Errorf("summary %q", got)
	}
}

package portmap

import (
	"fmt"
	"net/netip"

	"github.com/natcheck/natcheck/internal/tri"
)

// nonPublic are ranges a NAT's external address is never in when that NAT
// faces the internet directly. 100.64.0.0/10 is RFC 6598 shared space
// (carrier-grade NAT); 192.0.0.0/29 holds DS-Lite's B4 addresses.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/29"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// IsNonPublic says whether a is a private, shared (CGN), link-local or
// otherwise non-routable address that only a NAT's inside can have.
func IsNonPublic(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nonPublic {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// DoubleNAT compares the gateway's external address (from UPnP, NAT-PMP or
// PCP) with the address a STUN server saw (the mapped address). Either may
// be invalid (not known). A gateway whose external address is private or
// shared, or differs from the STUN-mapped address, has another NAT beyond
// it: Yes. Equal addresses: No. Otherwise Unknown. The string says why.
func DoubleNAT(gatewayExternal, stunMapped netip.Addr) (tri.Bool, string) {
	gw, pub := gatewayExternal.Unmap(), stunMapped.Unmap()
	switch {
	case !gw.IsValid() || gw.IsUnspecified():
		return tri.Unknown, "the gateway reported no external address"
	case IsNonPublic(gw):
		why := fmt.Sprintf("the gateway's external address %s is private or shared (carrier-grade NAT) space", gw)
		if pub.IsValid() {
			why += fmt.Sprintf("; a STUN server saw %s", pub)
		}
		return tri.Yes, why
	case !pub.IsValid():
		return tri.Unknown, "no STUN-mapped address to compare the gateway's external address with"
	case gw != pub:
		return tri.Yes, fmt.Sprintf("the gateway's external address %s differs from the STUN-mapped address %s", gw, pub)
	}
	return tri.No, fmt.Sprintf("the gateway's external address %s is the STUN-mapped address", gw)
}

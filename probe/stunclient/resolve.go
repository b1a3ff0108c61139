package stunclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver looks up host names. *net.Resolver satisfies it; tests pass one
// that dials a silent or scripted DNS server on loopback, so that no test
// ever depends on the host's real DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Each name's lookup has its own deadline, so that a hanging resolver
// costs a bounded part of a run and the rest of the time stays for the
// servers that did resolve (and for the STUN exchange of a late one):
// half the time left before ctx's deadline, at most LookupCap. A healthy
// resolver answers in tens of milliseconds; one that has not answered
// within two seconds has usually lost the query (the system resolvers
// retransmit after 1 to 5 s), and --timeout stays the bound of the whole
// run.
const (
	LookupCap   = 2 * time.Second
	lookupShare = 2 // the lookup gets 1/lookupShare of the time left
)

// LookupTimeout is the deadline of one name's lookup under ctx.
func LookupTimeout(ctx context.Context) time.Duration {
	d := LookupCap
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/lookupShare)
	}
	return max(d, 0)
}

// The causes of a failed lookup; every *ResolveError matches one of them
// with errors.Is.
var (
	// ErrDNSTimeout: the resolver gave no answer in time (a hanging or
	// unreachable DNS server, or an offline host).
	ErrDNSTimeout = errors.New("DNS gave no answer in time")
	// ErrNoSuchHost: the name does not exist (NXDOMAIN).
	ErrNoSuchHost = errors.New("no such host")
	// ErrNoAddress: the name exists, with addresses of the other family only.
	ErrNoAddress = errors.New("no address of the family asked for")
	// ErrDNSFailed: any other failure (the DNS server refused or failed
	// the query, or could not be reached).
	ErrDNSFailed = errors.New("DNS lookup failed")
)

// ResolveError is why a server name gave no address.
type ResolveError struct {
	Host    string
	Family  Family
	Kind    error         // ErrDNSTimeout, ErrNoSuchHost, ErrNoAddress or ErrDNSFailed
	Timeout time.Duration // the lookup's deadline, for ErrDNSTimeout
	Detail  string        // the resolver's own words, for ErrDNSFailed
}

func (e *ResolveError) Error() string {
	switch e.Kind {
	case ErrDNSTimeout:
		if e.Timeout > 0 {
			return fmt.Sprintf("%s: DNS gave no answer within %v", e.Host, e.Timeout.Round(10*time.Millisecond))
		}
		return e.Host + ": DNS gave no answer in time"
	case ErrNoSuchHost:
		return e.Host + ": no such host (DNS says the name does not exist)"
	case ErrNoAddress:
		other := IPv6
		if e.Family == IPv6 {
			other = IPv4
		}
		return fmt.Sprintf("%s: no %s address (it has %s addresses only)", e.Host, e.Family, other)
	default:
		if e.Detail != "" {
			return e.Host + ": DNS lookup failed: " + e.Detail
		}
		return e.Host + ": DNS lookup failed"
	}
}

// Unwrap is the cause, one of the Err* sentinels above. The resolver's own
// error is not in the chain: a lookup's deadline is not the run's.
func (e *ResolveError) Unwrap() error { return e.Kind }

// Offline reports whether the failure looks like no working DNS at all
// (a timeout or an unreachable resolver) rather than a wrong name.
func (e *ResolveError) Offline() bool { return e.Kind == ErrDNSTimeout || e.Kind == ErrDNSFailed }

// Resolve returns the server's addresses of family f, looked up with r
// (nil: the system's resolver) under its own deadline (LookupTimeout). An
// IP literal resolves to itself without a DNS query. A failed lookup is a
// *ResolveError; a lookup cut short by ctx's cancellation returns ctx's
// error.
func (s Server) Resolve(ctx context.Context, r Resolver, f Family) ([]netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s.Host); err == nil {
		if !f.matches(a) {
			return nil, &ResolveError{Host: s.Host, Family: f, Kind: ErrNoAddress}
		}
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(s.Port))}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	limit := LookupTimeout(ctx)
	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	addrs, err := r.LookupNetIP(lctx, f.Network("ip"), s.Host)
	if err == nil {
		var out []netip.AddrPort
		for _, a := range addrs {
			if f.matches(a) {
				out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(s.Port)))
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil, ctx.Err() // given up or interrupted: no cause to tell
	}
	rerr := &ResolveError{Host: s.Host, Family: f, Kind: ErrDNSFailed}
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		rerr.Kind = ErrNoAddress // addresses of the other family only
	case lctx.Err() != nil || (errors.As(err, &dnsErr) && dnsErr.IsTimeout):
		rerr.Kind, rerr.Timeout = ErrDNSTimeout, limit
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// NXDOMAIN and "no record of this type" read alike: ask for the
		// other family to tell "no such host" from "no IPv4 address".
		rerr.Kind = ErrNoSuchHost
		other := IPv6
		if f == IPv6 {
			other = IPv4
		}
		if as, err := r.LookupNetIP(lctx, other.Network("ip"), s.Host); err == nil && len(as) > 0 {
			rerr.Kind = ErrNoAddress
		}
	case errors.As(err, &dnsErr):
		rerr.Detail = dnsErr.Err
		if dnsErr.Server != "" {
			rerr.Detail += " (DNS server " + dnsErr.Server + ")"
		}
	default:
		rerr.Detail = err.Error()
	}
	return nil, rerr
}

// UnresolvedError means no server could be asked at all: every server was
// a name, and none resolved. It matches ErrNoAnswer (errors.Is), so callers
// and exit codes treat it as "no STUN server answered", and its text says
// the real cause.
type UnresolvedError struct {
	Errs []*ResolveError // one per server, in the order given
}

func (e *UnresolvedError) Error() string {
	lead := "DNS could not resolve any server name"
	for _, r := range e.Errs {
		if r.Offline() {
			lead += ": is this host offline?"
			break
		}
	}
	details := make([]string, len(e.Errs))
	for i, r := range e.Errs {
		details[i] = r.Error()
	}
	return lead + " (" + strings.Join(details, "; ") + ")"
}

// Is makes an UnresolvedError match ErrNoAnswer.
func (e *UnresolvedError) Is(target error) bool { return target == ErrNoAnswer }

// Unwrap gives the lookups' errors, so that errors.Is finds their causes.
func (e *UnresolvedError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, r := range e.Errs {
		out[i] = r
	}
	return out
}

// AllUnresolved returns an *UnresolvedError when every one of errs (one
// per server asked) is a name's *ResolveError, and nil otherwise (nothing
// asked, or some server resolved, was an IP literal, or failed otherwise).
func AllUnresolved(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	u := &UnresolvedError{}
	for _, err := range errs {
		var r *ResolveError
		if !errors.As(err, &r) {
			return nil
		}
		if _, err := netip.ParseAddr(r.Host); err == nil {
			return nil // an address of the wrong family: no DNS involved
		}
		u.Errs = append(u.Errs, r)
	}
	return u
}

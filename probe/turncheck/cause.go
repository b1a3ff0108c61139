package turncheck

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// TLSProblem is why a certificate was refused.
type TLSProblem string

const (
	TLSNone     TLSProblem = ""
	TLSExpired  TLSProblem = "expired"
	TLSName     TLSProblem = "name"
	TLSUnknown  TLSProblem = "unknown authority"
	TLSOther    TLSProblem = "other"
	tlsNotCerts TLSProblem = "handshake"
)

// ClassifyTLS tells which part of certificate verification failed in err
// (from a TLS handshake), or TLSNone when err is no verification error.
func ClassifyTLS(err error) TLSProblem {
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var verify interface{ Unwrap() error }
	switch {
	case err == nil:
		return TLSNone
	case errors.As(err, &inv):
		if inv.Reason == x509.Expired {
			return TLSExpired
		}
		return TLSOther
	case errors.As(err, &host):
		return TLSName
	case errors.As(err, &unknown):
		return TLSUnknown
	case errors.As(err, &verify):
		return tlsNotCerts
	}
	return tlsNotCerts
}

// Failure is what went wrong, as the check saw it; Explain turns it into a
// verdict and a cause. It holds no secret.
type Failure struct {
	Step      StepName
	Code      int // STUN error code, 0 if none
	Transport Transport
	REST      bool // credentials made from --secret
	Realm     string
	TLS       TLSProblem
	Silent    bool // no answer at all
	Server    netip.Addr
	Relayed   netip.Addr
	Err       error
	// The clocks, for refused REST credentials: Expiry is the user name's
	// timestamp, Now this host's time at the refusal; ServerSkew is how far
	// the server's clock is ahead of this host's, give or take
	// SkewPrecision, when SkewKnown.
	Expiry, Now   time.Time
	ServerSkew    time.Duration
	SkewPrecision time.Duration
	SkewKnown     bool
}

// Explain maps a failure to its verdict and cause in plain words.
func Explain(f Failure) (Verdict, string) {
	if f.Silent && (f.Step == StepReach || f.Step == StepAuth || f.Step == StepAllocate) {
		switch f.Transport {
		case UDP:
			return Unreachable, "no answer over UDP: UDP to the server is blocked (a firewall, a guest network) or the server is down; try turns: on port 443 (turns:HOST:443?transport=tcp), which passes most firewalls"
		case TCP:
			if f.Step == StepReach {
				return Unreachable, "no answer over TCP: the connection was refused or timed out (server down, port closed or blocked)"
			}
			return Unreachable, "connected over TCP but the server never answered a TURN request (not a TURN server on that port?)"
		default:
			if f.Step == StepReach {
				return Unreachable, "no answer over TLS: the TCP connection was refused or timed out (server down, port closed or blocked)"
			}
			return Unreachable, "connected over TLS but the server never answered a TURN request (not a TURN server on that port?)"
		}
	}
	switch f.Step {
	case StepReach:
		return Unreachable, "could not reach the server: " + errString(f.Err)
	case StepTLS:
		switch f.TLS {
		case TLSExpired:
			return Failed, "TLS certificate verification failed: the server's certificate has expired (renew it; --insecure skips the check)"
		case TLSName:
			return Failed, "TLS certificate verification failed: the certificate's name does not match the server name (use the name on the certificate; --insecure skips the check)"
		case TLSUnknown:
			return Failed, "TLS certificate verification failed: the certificate is signed by an unknown authority (self-signed or private CA: pass it with --ca FILE; --insecure skips the check)"
		case TLSOther:
			return Failed, "TLS certificate verification failed: " + errString(f.Err)
		}
		return Failed, "TLS handshake failed: " + errString(f.Err)
	}
	realm := ""
	if f.Realm != "" {
		realm = fmt.Sprintf(" (realm %q)", f.Realm)
	}
	switch f.Code {
	case 401:
		if clock := restClock(f); f.REST && clock != "" {
			return Failed, "the server refused the REST credentials (401): " + clock + realm
		}
		if f.REST {
			return Failed, "the server refused the credentials (401): the REST credentials may have expired or not be valid yet (check the clock on this host and on the server), the shared secret may be wrong, or the realm differs from the server's" + realm
		}
		return Failed, "the server refused the credentials (401): wrong user or password, or the user is not in the server's realm" + realm
	case 400:
		if f.Step == StepAuth {
			if clock := restClock(f); f.REST && clock != "" {
				return Failed, "the server refused the REST credentials (400; some servers, such as pion/turn, answer 400 where coturn answers 401): " + clock + realm
			}
			if f.REST {
				return Failed, "the server rejected the authenticated request (400; some servers, such as pion/turn, answer 400 where coturn answers 401): the REST credentials may have expired (check the clock) or the shared secret is wrong" + realm
			}
			return Failed, "the server rejected the authenticated request (400; some servers, such as pion/turn, answer 400 where coturn answers 401): wrong user or password, or the user is not in the server's realm" + realm
		}
		return Failed, fmt.Sprintf("the server answered 400 Bad Request at %s: %s", f.Step, errString(f.Err))
	case 431:
		return Failed, "the server saw a message integrity error (431): the credentials do not match" + realm
	case 438:
		return Failed, "the server kept answering 'stale nonce' (438) even after a retry"
	case 403:
		if f.Step == StepPermission || f.Step == StepChannelBind {
			return Failed, "the server denies that peer address (403 Forbidden): its rules refuse relaying to the peer's IP (coturn: denied-peer-ip, or the private ranges it refuses without allow-loopback-peers)"
		}
		return Failed, "the server forbids this request (403 Forbidden): the user may not allocate here"
	case 437:
		if f.Step == StepRefresh {
			return Failed, "the server no longer knows the allocation (437 Allocation Mismatch on Refresh): it was deleted or expired before its lifetime ended"
		}
		return Failed, "allocation mismatch (437): the server already has an allocation for this client address and port, or it expired; retry from a new port"
	case 440:
		return Failed, "address family not supported (440) by the server"
	case 441, 442:
		return Failed, fmt.Sprintf("transport not supported (%d): the server does not relay over the requested transport (coturn: no-udp-relay or no-tcp-relay)", f.Code)
	case 486:
		return Failed, "allocation quota reached (486): the user, or the server in total, has no allocation left (coturn: user-quota, total-quota)"
	case 508:
		return Failed, "the server is out of capacity (508 Insufficient Capacity): no relay port left (coturn: min-port/max-port range too small, or too many allocations)"
	case 0:
	default:
		return Failed, fmt.Sprintf("the server answered error %d at %s: %s", f.Code, f.Step, errString(f.Err))
	}
	switch f.Step {
	case StepAllocate:
		if PrivateRelay(f.Server, f.Relayed) {
			return Failed, fmt.Sprintf("the relayed address %s is private: peers on the internet cannot reach it; the server is probably behind NAT without its public address configured (coturn: external-ip=PUBLIC/PRIVATE)", f.Relayed)
		}
		if f.Silent {
			return Failed, "the server answered but never confirmed the allocation"
		}
	case StepPermission:
		if f.Silent {
			return Failed, "the server never answered CreatePermission: the server probably denies that peer address and drops the request (pion/turn does; coturn answers 403 for its denied-peer-ip ranges)"
		}
	case StepChannelBind:
		if f.Silent {
			return Failed, "the server never answered ChannelBind"
		}
	case StepRefresh:
		if f.Silent {
			return Failed, "the server never answered the Refresh of a working allocation: a call through it would end when the allocation's lifetime runs out"
		}
	case StepData:
		hint := ""
		if f.Relayed.IsValid() && scope(f.Relayed) < scopePublic {
			hint = fmt.Sprintf("; the relayed address %s is private: is the server behind NAT without external-ip?", f.Relayed)
		}
		return Failed, "the relay allocates but carries no data: no packet made it from one allocation through the relay to the other (a firewall in front of the relay ports, or a wrong relay-ip/external-ip)" + hint
	}
	return Failed, fmt.Sprintf("%s failed: %s", f.Step, errString(f.Err))
}

func errString(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}

const (
	scopeLoopback = iota
	scopePrivate
	scopePublic
)

func scope(a netip.Addr) int {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return scopeLoopback
	case a.IsPrivate(), a.IsLinkLocalUnicast(), cgnat.Contains(a), a.IsUnspecified():
		return scopePrivate
	}
	return scopePublic
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// PrivateRelay says whether a relayed address is less reachable than the
// server's own: private (RFC 1918, carrier-grade NAT, link-local, ULA) or
// loopback while the server was reached on a public address, or loopback
// while the server was reached on a private one.
func PrivateRelay(server, relayed netip.Addr) bool {
	if !server.IsValid() || !relayed.IsValid() {
		return false
	}
	return scope(relayed) < scope(server)
}

package turncheck

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Transport is how natcheck talks to the TURN server.
type Transport string

const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
	TLS Transport = "tls"
)

// Verdict is a server's outcome.
type Verdict string

const (
	Works       Verdict = "works"
	Failed      Verdict = "failed"      // reached, but relaying failed
	Unreachable Verdict = "unreachable" // no answer over the transport
)

// StepName names one step of the check, in the order they run.
type StepName string

const (
	StepReach       StepName = "reach"
	StepTLS         StepName = "tls"
	StepAuth        StepName = "auth"
	StepAllocate    StepName = "allocate"
	StepPermission  StepName = "permission"
	StepChannelBind StepName = "channel-bind"
	StepData        StepName = "data"
	StepRefresh     StepName = "refresh"
	StepDelete      StepName = "delete"
)

// Step is one step's outcome.
type Step struct {
	Name    StepName
	OK      bool
	Elapsed time.Duration
	Err     error
}

// Packets is the data test: Sent packets from allocation A to B, Forwarded
// of them arrived at B, Received came back to A.
type Packets struct {
	Sent, Forwarded, Received int
	Loss                      float64 // 1 - Received/Sent
	RTT                       time.Duration
	Jitter                    time.Duration
}

// URI is a parsed RFC 7065 TURN URI.
type URI struct {
	Raw       string // as given
	Secure    bool   // turns:
	Host      string
	Port      uint16
	Transport Transport
}

// HostPort is host:port.
func (u URI) HostPort() string { return net.JoinHostPort(u.Host, strconv.Itoa(int(u.Port))) }

// ParseURI parses turn:host[:port][?transport=udp|tcp] and
// turns:host[:port][?transport=tcp] (RFC 7065); default ports 3478 and 5349.
func ParseURI(s string) (URI, error) {
	u := URI{Raw: s}
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return u, fmt.Errorf("TURN URI %q: want turn:host[:port][?transport=udp|tcp] or turns:host[:port]", clip(s))
	case strings.EqualFold(scheme, "turn"):
		u.Port, u.Transport = 3478, UDP
	case strings.EqualFold(scheme, "turns"):
		u.Secure, u.Port, u.Transport = true, 5349, TLS
	default:
		return u, fmt.Errorf("TURN URI %q: the scheme must be turn: or turns:", clip(s))
	}
	hostport, query, _ := strings.Cut(rest, "?")
	if strings.HasPrefix(hostport, "//") {
		return u, fmt.Errorf("TURN URI %q: no // after the scheme (turn:host:port)", clip(s))
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return u, fmt.Errorf("TURN URI %q: bad query: %v", clip(s), err)
		}
		for k := range q {
			if k != "transport" {
				return u, fmt.Errorf("TURN URI %q: unknown parameter %q (only transport=)", clip(s), k)
			}
		}
		switch t := strings.ToLower(q.Get("transport")); {
		case t == "udp" && !u.Secure:
			u.Transport = UDP
		case t == "tcp" && !u.Secure:
			u.Transport = TCP
		case t == "tcp" && u.Secure:
			u.Transport = TLS
		case t == "udp":
			return u, fmt.Errorf("TURN URI %q: turns: runs over TLS on TCP; DTLS (transport=udp) is not supported", clip(s))
		default:
			return u, fmt.Errorf("TURN URI %q: transport must be udp or tcp, got %q", clip(s), t)
		}
	}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return u, fmt.Errorf("TURN URI %q: no valid host", clip(s))
	}
	if port != "" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return u, fmt.Errorf("TURN URI %q: port must be 1-65535", clip(s))
		}
		u.Port = uint16(p)
	}
	u.Host = host
	return u, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// Result is one server's check.
type Result struct {
	URI        URI
	Address    netip.AddrPort // the server address tested
	Verdict    Verdict
	FailedStep StepName // "" when it works
	ErrorCode  int      // the STUN error code of the failure, 0 if none
	Cause      string   // plain words; empty when it works
	Steps      []Step
	Relayed    netip.AddrPort // allocation A's relayed address
	Reflexive  netip.AddrPort // the client's address as the server saw it
	Lifetime   time.Duration
	Refreshed  time.Duration // the lifetime the server granted on Refresh; 0 if the refresh did not run
	Software   string
	Realm      string
	Packets    *Packets // nil when the data step did not run
	Elapsed    time.Duration
	Err        error // the failure's error, nil when it works
	// silent marks a failure where the server never answered (for the
	// UDP-versus-TCP/TLS comparison of Run).
	silent bool
}

// Step returns the named step, or nil.
func (r *Result) Step(n StepName) *Step {
	for i := range r.Steps {
		if r.Steps[i].Name == n {
			return &r.Steps[i]
		}
	}
	return nil
}

// ErrInterrupted marks a check cut short by the caller (Ctrl-C).
var ErrInterrupted = errors.New("interrupted")

package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/pion/logging"
)

// relayDialTimeout bounds one TCP connect and TLS handshake to a TURN
// server, inside GatherCap.
const relayDialTimeout = 3 * time.Second

// relayDialer connects the ICE agent to the TURN servers reached over TCP
// or TLS (pion's proxy-dialer seam). natcheck dials them itself so that a
// turns: server is verified against --ca (or not at all, --insecure)
// rather than only the system's CAs, and so that a server that cannot be
// reached, or whose certificate is refused, is named with its cause
// (turncheck's words) instead of disappearing into pion's log.
type relayDialer struct {
	// byAddr is each TCP or TLS server by the host:port pion dials.
	byAddr map[string]turncheck.URI
	tls    turncheck.Options // RootCAs and Insecure
	logf   func(string, ...any)

	mu       sync.Mutex
	problems []string
}

// newRelayDialer holds the TCP and TLS servers among us. Two of them at
// one host:port with and without TLS are refused: pion dials by address
// only, so the dialer could not tell which one it was asked for.
func newRelayDialer(us []turncheck.URI, tlsOpts turncheck.Options, logf func(string, ...any)) (*relayDialer, error) {
	d := &relayDialer{byAddr: map[string]turncheck.URI{}, tls: tlsOpts, logf: logf}
	for _, u := range us {
		if u.Transport == turncheck.UDP {
			continue
		}
		if o, ok := d.byAddr[u.HostPort()]; ok && o.Transport != u.Transport {
			return nil, fmt.Errorf("%w: %s and %s are one address with and without TLS; give one", ErrTURNConflict, o.Raw, u.Raw)
		}
		d.byAddr[u.HostPort()] = u
	}
	return d, nil
}

// ErrTURNConflict is two TURN URIs that cannot both be used (bad usage).
var ErrTURNConflict = errors.New("TURN servers")

// CheckTURN reports whether the TURN URIs can be used together.
func CheckTURN(us []turncheck.URI) error {
	_, err := newRelayDialer(us, turncheck.Options{}, nil)
	return err
}

// Dial is proxy.Dialer's: network is pion's ("udp4", "tcp4", ...), only
// its family counts.
func (d *relayDialer) Dial(network, addr string) (net.Conn, error) {
	u, ok := d.byAddr[addr]
	if !ok {
		return nil, fmt.Errorf("no TURN server %s", addr)
	}
	tcp := "tcp4"
	if strings.HasSuffix(network, "6") {
		tcp = "tcp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayDialTimeout)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, tcp, addr)
	if err != nil {
		d.fail(u, turncheck.Failure{Step: turncheck.StepReach, Transport: u.Transport, Silent: ctx.Err() != nil, Err: err})
		return nil, err
	}
	if u.Transport != turncheck.TLS {
		return conn, nil
	}
	tc := tls.Client(conn, d.tls.TLSConfig(u.Host))
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		d.fail(u, turncheck.Failure{Step: turncheck.StepTLS, Transport: u.Transport, TLS: turncheck.ClassifyTLS(err), Err: err})
		return nil, err
	}
	return tc, nil
}

// fail records why a TURN server gave no relay candidate, once per server.
func (d *relayDialer) fail(u turncheck.URI, f turncheck.Failure) {
	_, cause := turncheck.Explain(f)
	p := u.Raw + ": " + cause
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Contains(d.problems, p) {
		return
	}
	d.problems = append(d.problems, p)
	if d.logf != nil {
		d.logf("TURN %s", p)
	}
}

// Problems is every cause recorded so far.
func (d *relayDialer) Problems() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.problems...)
}

// iceLog routes the ICE agent's warnings and errors (a TURN allocation
// refused, a server that did not answer) to -v; its chatter below that
// level is dropped.
type iceLog struct{ logf func(string, ...any) }

func (l iceLog) NewLogger(scope string) logging.LeveledLogger {
	return iceLogger{scope: scope, logf: l.logf}
}

type iceLogger struct {
	scope string
	logf  func(string, ...any)
}

func (l iceLogger) Trace(string)          {}
func (l iceLogger) Tracef(string, ...any) {}
func (l iceLogger) Debug(string)          {}
func (l iceLogger) Debugf(string, ...any) {}
func (l iceLogger) Info(string)           {}
func (l iceLogger) Infof(string, ...any)  {}
func (l iceLogger) Warn(m string)         { l.logf("%s: %s", l.scope, m) }
func (l iceLogger) Warnf(f string, a ...any) {
	l.logf("%s: %s", l.scope, fmt.Sprintf(f, a...))
}
func (l iceLogger) Error(m string) { l.logf("%s: %s", l.scope, m) }
func (l iceLogger) Errorf(f string, a ...any) {
	l.logf("%s: %s", l.scope, fmt.Sprintf(f, a...))
}

package turncheck

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v3"
)

// response is one STUN response the server sent, as the tap saw it.
type response struct {
	at       time.Time
	method   stun.Method
	success  bool
	code     int
	realm    string
	nonce    string
	software string
	mapped   netip.AddrPort
	lifetime time.Duration
}

// tap is the socket pion's client reads from: it passes every packet on
// and records the STUN responses (error codes, SOFTWARE, REALM, the
// reflexive address) that pion's API does not return.
type tap struct {
	net.PacketConn
	mu      sync.Mutex
	rs      []response
	changed chan struct{}
}

func newTap(pc net.PacketConn) *tap { return &tap{PacketConn: pc, changed: make(chan struct{})} }

func (t *tap) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := t.PacketConn.ReadFrom(p)
	if err == nil && stun.IsMessage(p[:n]) {
		m := &stun.Message{Raw: append([]byte(nil), p[:n]...)}
		if m.Decode() == nil && (m.Type.Class == stun.ClassSuccessResponse || m.Type.Class == stun.ClassErrorResponse) {
			r := response{at: time.Now(), method: m.Type.Method, success: m.Type.Class == stun.ClassSuccessResponse}
			var code stun.ErrorCodeAttribute
			if code.GetFrom(m) == nil {
				r.code = int(code.Code)
			}
			var realm stun.Realm
			if realm.GetFrom(m) == nil {
				r.realm = realm.String()
			}
			var nonce stun.Nonce
			if nonce.GetFrom(m) == nil {
				r.nonce = nonce.String()
			}
			var sw stun.Software
			if sw.GetFrom(m) == nil {
				r.software = sw.String()
			}
			var xa stun.XORMappedAddress
			if xa.GetFrom(m) == nil {
				if ip, ok := netip.AddrFromSlice(xa.IP); ok {
					r.mapped = netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))
				}
			}
			if v, err := m.Get(stun.AttrLifetime); err == nil && len(v) == 4 {
				r.lifetime = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
			}
			t.mu.Lock()
			t.rs = append(t.rs, r)
			close(t.changed)
			t.changed = make(chan struct{})
			t.mu.Unlock()
		}
	}
	return n, addr, err
}

// since returns the responses received at or after t0.
func (t *tap) since(t0 time.Time) []response {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []response
	for _, r := range t.rs {
		if !r.at.Before(t0) {
			out = append(out, r)
		}
	}
	return out
}

// nonce is the last NONCE the server sent, "" if none.
func (t *tap) nonce() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.rs) - 1; i >= 0; i-- {
		if t.rs[i].nonce != "" {
			return t.rs[i].nonce
		}
	}
	return ""
}

// wait waits until a response of method m arrives after t0, or d passes.
func (t *tap) wait(m stun.Method, t0 time.Time, d time.Duration) (response, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		ch := t.changed
		t.mu.Unlock()
		for _, r := range t.since(t0) {
			if r.method == m {
				return r, true
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			return response{}, false
		}
	}
}

// bindLog receives pion's log lines and keeps the outcome of channel
// bindings, which pion runs in the background and only logs. Nothing else
// is kept or printed.
type bindLog struct {
	mu   sync.Mutex
	done chan struct{}
	ok   bool
	err  string
	once sync.Once
}

func newBindLog() *bindLog { return &bindLog{done: make(chan struct{})} }

func (l *bindLog) NewLogger(string) logging.LeveledLogger { return l }

func (l *bindLog) Debugf(format string, args ...any) {
	if strings.HasPrefix(format, "Channel binding successful") {
		l.finish(true, "")
	}
}

func (l *bindLog) Warnf(format string, args ...any) {
	if strings.HasPrefix(format, "Failed to bind channel") {
		l.finish(false, fmt.Sprintf(format, args...))
	}
}

func (l *bindLog) finish(ok bool, err string) {
	l.once.Do(func() {
		l.mu.Lock()
		l.ok, l.err = ok, err
		l.mu.Unlock()
		close(l.done)
	})
}

func (l *bindLog) Trace(string)          {}
func (l *bindLog) Tracef(string, ...any) {}
func (l *bindLog) Debug(string)          {}
func (l *bindLog) Info(string)           {}
func (l *bindLog) Infof(string, ...any)  {}
func (l *bindLog) Warn(string)           {}
func (l *bindLog) Error(string)          {}
func (l *bindLog) Errorf(string, ...any) {}

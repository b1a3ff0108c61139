package turncheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/stun/v3"
)

// defaultRefresh is the lifetime a Refresh asks for when the allocation's
// is unknown (RFC 8656's default).
const defaultRefresh = 600 * time.Second

// lifetimeAttr is the LIFETIME attribute (RFC 8656 section 18.2): pion
// encodes it in an internal package, so it is set here on stun's message.
type lifetimeAttr time.Duration

func (l lifetimeAttr) AddTo(m *stun.Message) error {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(time.Duration(l)/time.Second))
	m.Add(stun.AttrLifetime, v)
	return nil
}

// refreshError is a Refresh the server refused.
type refreshError struct{ code int }

func (e refreshError) Error() string {
	return fmt.Sprintf("the server answered the Refresh with error %d", e.code)
}

// refresh refreshes both allocations (a Refresh request with the lifetime
// the server granted, RFC 8656 section 7) and records the lifetime the
// server grants A. pion's client refreshes by itself only at half the
// lifetime, so the request is built with stun's builders and sent as one
// of the client's transactions; the nonce is the last the server sent.
func (c *checker) refresh(a, b *side) bool {
	t0 := time.Now()
	want := c.r.Lifetime
	if want <= 0 {
		want = defaultRefresh
	}
	for i, s := range []*side{a, b} {
		got, code, err := c.sendRefresh(s, want)
		if code == 438 { // stale nonce: retry once with the new one
			got, code, err = c.sendRefresh(s, want)
		}
		if err != nil {
			c.step(StepRefresh, false, time.Since(t0), err)
			c.fail(Failure{Step: StepRefresh, Code: code, Silent: code == 0, Err: err})
			return false
		}
		if i == 0 {
			c.r.Refreshed = got
		}
	}
	c.step(StepRefresh, true, time.Since(t0), nil)
	return true
}

// sendRefresh sends one Refresh on s: the lifetime granted, or the error
// code and error of a refusal (code 0: no answer).
func (c *checker) sendRefresh(s *side, lifetime time.Duration) (time.Duration, int, error) {
	realm := s.client.Realm().String()
	msg, err := stun.Build(
		stun.TransactionID,
		stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		lifetimeAttr(lifetime),
		stun.NewUsername(c.o.User),
		stun.NewRealm(realm),
		stun.NewNonce(s.tap.nonce()),
		stun.NewLongTermIntegrity(c.o.User, realm, c.o.Password),
		stun.Fingerprint,
	)
	if err != nil {
		return 0, 0, err
	}
	tr, err := s.client.PerformTransaction(msg, s.client.TURNServerAddr(), false)
	if err != nil {
		return 0, 0, fmt.Errorf("no answer to the Refresh: %w", err)
	}
	res := tr.Msg
	if res == nil {
		return 0, 0, errors.New("no answer to the Refresh")
	}
	if res.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		if code.GetFrom(res) != nil {
			return 0, 0, errors.New("the server answered the Refresh with an error without a code")
		}
		return 0, int(code.Code), refreshError{int(code.Code)}
	}
	v, err := res.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		return 0, 0, nil // accepted, lifetime not said
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second, 0, nil
}

package stunclient

import (
	"bytes"
	"testing"

	"github.com/pion/stun/v3"
)

// FuzzReadStreamMessage feeds arbitrary bytes to the STUN-over-TCP framing:
// it must never panic, and whatever it accepts must be a whole message.
func FuzzReadStreamMessage(f *testing.F) {
	m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{203, 0, 113, 2}, Port: 4000}, stun.Fingerprint)
	f.Add(m.Raw)
	f.Add(m.Raw[:20])
	f.Add([]byte{0, 1, 0xff, 0xfc})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadStreamMessage(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(got.Raw) > len(b) || !bytes.Equal(got.Raw, b[:len(got.Raw)]) {
			t.Fatalf("accepted %d bytes that are not a prefix of the input", len(got.Raw))
		}
	})
}

func TestReadStreamMessage(t *testing.T) {
	m, err := stun.Build(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{203, 0, 113, 2}, Port: 4000}, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"whole message", m.Raw, true},
		{"message and the start of the next", append(append([]byte{}, m.Raw...), 0, 1), true},
		{"truncated body", m.Raw[:len(m.Raw)-1], false},
		{"header only", m.Raw[:20], false},
		{"length not a multiple of 4", []byte{0, 1, 0, 3, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0}, false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadStreamMessage(bytes.NewReader(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && got.TransactionID != m.TransactionID {
				t.Errorf("transaction ID %x, want %x", got.TransactionID, m.TransactionID)
			}
		})
	}
}

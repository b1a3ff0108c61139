package rendezvous

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// A code is 80 random bits (crypto/rand), written as 16 lower-case
// characters of Crockford's base32 (digits and letters without i, l, o, u)
// in four groups of four: "k7p2-9xqa-m3tc-f8wd". Reading it out loud or
// retyping it is forgiving: ParseCode ignores case and separators and reads
// i and l as 1 and o as 0.
//
// From the code HKDF-SHA256 derives two independent keys: the lookup key,
// the only part the server ever sees, and the encryption key, which never
// leaves the two peers. Deriving a code from a lookup key means inverting
// HKDF: a search of 2^80 codes.
const (
	CodeBits   = 80
	codeBytes  = CodeBits / 8
	codeChars  = CodeBits / 5
	groupChars = 4
)

// alphabet is Crockford's base32, lower-case.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// Code is a rendezvous code: 80 random bits.
type Code [codeBytes]byte

// NewCode draws a code from crypto/rand.
func NewCode() (Code, error) {
	var c Code
	if _, err := rand.Read(c[:]); err != nil {
		return Code{}, fmt.Errorf("rendezvous: no randomness for a code: %w", err)
	}
	return c, nil
}

// String writes the code in four dash-separated groups of four.
func (c Code) String() string {
	var b strings.Builder
	b.Grow(codeChars + codeChars/groupChars - 1)
	// 80 bits are exactly 16 symbols of 5 bits, most significant first.
	var acc uint64
	bits := 0
	n := 0
	for _, x := range c {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			if n > 0 && n%groupChars == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(alphabet[acc>>bits&31])
			n++
		}
	}
	return b.String()
}

// ErrBadCode is wrapped by every ParseCode error.
var ErrBadCode = errors.New("not a rendezvous code")

// ParseCode reads a code, tolerant of case, of separators (dashes, spaces,
// dots, underscores) and of the usual misreadings (i and l for 1, o for 0).
func ParseCode(s string) (Code, error) {
	var c Code
	var acc uint64
	bits, n, out := 0, 0, 0
	for _, r := range s {
		var v int
		switch {
		case r == '-' || r == ' ' || r == '.' || r == '_' || r == '\t':
			continue
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		}
		switch r {
		case 'i', 'l':
			r = '1'
		case 'o':
			r = '0'
		}
		v = strings.IndexRune(alphabet, r)
		if v < 0 {
			return Code{}, fmt.Errorf("%w: %q is not one of its characters (0-9 and a-z without u)", ErrBadCode, r)
		}
		n++
		if n > codeChars {
			return Code{}, fmt.Errorf("%w: more than %d characters", ErrBadCode, codeChars)
		}
		acc = acc<<5 | uint64(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			c[out] = byte(acc >> bits)
			out++
		}
	}
	if n != codeChars {
		return Code{}, fmt.Errorf("%w: it has %d characters (four groups of four), got %d", ErrBadCode, codeChars, n)
	}
	return c, nil
}

// Sizes of the derived keys.
const (
	LookupKeySize = 16
	sealKeySize   = 32 // AES-256
)

// LookupKey names a code's entry on the server.
type LookupKey [LookupKeySize]byte

// keys are what a code derives.
type keys struct {
	lookup LookupKey
	seal   [sealKeySize]byte
}

// HKDF parameters: a fixed salt naming the protocol and version, and one
// label per key, so the two keys are independent.
const (
	hkdfSalt    = "natcheck rendezvous v1"
	labelLookup = "lookup key"
	labelSeal   = "encryption key"
)

func (c Code) keys() keys {
	var k keys
	l, err := hkdf.Key(sha256.New, c[:], []byte(hkdfSalt), labelLookup, LookupKeySize)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	s, err := hkdf.Key(sha256.New, c[:], []byte(hkdfSalt), labelSeal, sealKeySize)
	if err != nil {
		panic(err)
	}
	copy(k.lookup[:], l)
	copy(k.seal[:], s)
	return k
}

// LookupKey is the part of the code the server sees.
func (c Code) LookupKey() LookupKey { return c.keys().lookup }

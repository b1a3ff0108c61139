package rendezvous

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var codeFormat = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$`)

func TestCodeFormatAndRoundTrip(t *testing.T) {
	seen := map[Code]bool{}
	for i := 0; i < 2000; i++ {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if seen[c] {
			t.Fatalf("code %v drawn twice", c)
		}
		seen[c] = true
		s := c.String()
		if !codeFormat.MatchString(s) {
			t.Fatalf("%q: not four groups of four Crockford base32 characters", s)
		}
		for _, in := range []string{s, strings.ToUpper(s), strings.ReplaceAll(s, "-", ""), strings.ReplaceAll(s, "-", " "), " " + strings.ReplaceAll(s, "-", ".") + " "} {
			got, err := ParseCode(in)
			if err != nil || got != c {
				t.Fatalf("ParseCode(%q) = %v, %v; want %v", in, got, err, c)
			}
		}
	}
}

func TestCodeKnownValues(t *testing.T) {
	var zero, ones Code
	for i := range ones {
		ones[i] = 0xff
	}
	if zero.String() != "0000-0000-0000-0000" || ones.String() != "zzzz-zzzz-zzzz-zzzz" {
		t.Fatalf("%s %s", zero, ones)
	}
	c := Code{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23}
	if s := c.String(); s != "04hm-asw9-nf6y-y093" {
		t.Fatalf("String = %s", s)
	}
	// Misreadings: o for 0, i and l for 1; case and separators ignored.
	got, err := ParseCode("O4HM_ASW9 NF6Y.Y093")
	if err != nil || got != c {
		t.Fatalf("tolerant parse: %v %v", got, err)
	}
	if a, _ := ParseCode("1111-1111-1111-1111"); a != mustParse(t, "iiii-llll-IIII-LLLL") {
		t.Fatal("i and l are not read as 1")
	}
}

func mustParse(t *testing.T, s string) Code {
	t.Helper()
	c, err := ParseCode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCodeErrors(t *testing.T) {
	for _, in := range []string{"", "k7p2-9xqa-m3tc", "k7p2-9xqa-m3tc-f8wd-a", "k7p2-9xqa-m3tc-f8wu", "k7p2-9xqa-m3tc-f8w!", "k7p2-9xqa-m3tc-f8wé"} {
		if _, err := ParseCode(in); !errors.Is(err, ErrBadCode) {
			t.Errorf("ParseCode(%q) = %v, want ErrBadCode", in, err)
		}
	}
}

// TestCodeEntropy: 80 bits, and each of the 16 characters uniform enough
// over many draws (a stuck or biased bit would show).
func TestCodeEntropy(t *testing.T) {
	if CodeBits < 64 {
		t.Fatal("codes must carry at least 64 bits")
	}
	const n = 4000
	var ones [CodeBits]int
	for i := 0; i < n; i++ {
		c, _ := NewCode()
		for b := 0; b < CodeBits; b++ {
			if c[b/8]>>(7-b%8)&1 == 1 {
				ones[b]++
			}
		}
	}
	for b, k := range ones {
		// mean 2000, sd ~31.6: 6 sd either way
		if k < n/2-190 || k > n/2+190 {
			t.Errorf("bit %d set %d times of %d", b, k, n)
		}
	}
}

func TestKeysIndependent(t *testing.T) {
	c := mustParse(t, "k7p2-9xqa-m3tc-f8wd")
	k := c.keys()
	if bytes.Equal(k.lookup[:], k.seal[:LookupKeySize]) {
		t.Fatal("lookup key is a prefix of the encryption key")
	}
	if k != c.keys() || c.LookupKey() != k.lookup {
		t.Fatal("derivation is not deterministic")
	}
	d := c
	d[9] ^= 1
	if dk := d.keys(); dk.lookup == k.lookup || dk.seal == k.seal {
		t.Fatal("one bit of code does not change the keys")
	}
}

func TestSealRoundTrip(t *testing.T) {
	c, _ := NewCode()
	k := c.keys()
	for _, n := range []int{0, 1, 300, MaxBlob} {
		blob := bytes.Repeat([]byte{'t'}, n)
		sealed, err := seal(&k, Creator, blob)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != n+Overhead {
			t.Fatalf("sealed %d bytes into %d", n, len(sealed))
		}
		if n > 0 && bytes.Contains(sealed, blob[:min(n, 8)]) && n >= 8 {
			t.Fatal("plaintext visible in the sealed blob")
		}
		got, err := open(&k, Creator, sealed)
		if err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("open: %v", err)
		}
	}
	if _, err := seal(&k, Creator, make([]byte, MaxBlob+1)); !errors.Is(err, ErrBlobTooLarge) {
		t.Fatalf("oversized blob: %v", err)
	}
}

// TestOpenFails: a wrong code, the other role, a flipped bit, and the
// server's knowledge (the lookup key) all fail to open a blob.
func TestOpenFails(t *testing.T) {
	c, _ := NewCode()
	k := c.keys()
	sealed, _ := seal(&k, Joiner, []byte("ticket: ufrag pwd candidates"))
	wrong := c
	wrong[0] ^= 0x80
	wk := wrong.keys()
	if _, err := open(&wk, Joiner, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("wrong code opened it: %v", err)
	}
	if _, err := open(&k, Creator, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened as the other role: %v", err)
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		if _, err := open(&k, Joiner, b); !errors.Is(err, ErrOpen) {
			t.Fatalf("bit flip at %d accepted", i)
		}
	}
	// The server knows the lookup key: used as key material (alone or
	// padded), it opens nothing.
	var sk keys
	sk.lookup = k.lookup
	copy(sk.seal[:], k.lookup[:])
	copy(sk.seal[LookupKeySize:], k.lookup[:])
	if _, err := open(&sk, Joiner, sealed); !errors.Is(err, ErrOpen) {
		t.Fatal("the lookup key opened a blob")
	}
	if _, err := open(&k, Joiner, sealed[:Overhead-1]); !errors.Is(err, ErrOpen) {
		t.Fatal("short blob accepted")
	}
}

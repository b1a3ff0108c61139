package turncheck

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// RESTExpiry reads the expiry timestamp of TURN REST credentials from the
// user name: "<expiry>:<user>" (coturn's default order), "<user>:<expiry>"
// or "<expiry>" alone.
func RESTExpiry(username string) (time.Time, bool) {
	fields := strings.Split(username, ":")
	for _, f := range []string{fields[0], fields[len(fields)-1]} {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil && n >= 0 {
			return time.Unix(n, 0), true
		}
	}
	return time.Time{}, false
}

// LooksREST reports whether username has the shape of TURN REST
// credentials: an expiry timestamp (RESTExpiry) within ten years of now,
// which no plain user name is likely to carry.
func LooksREST(username string, now time.Time) bool {
	t, ok := RESTExpiry(username)
	if !ok {
		return false
	}
	d := t.Sub(now)
	return d < 10*365*24*time.Hour && d > -10*365*24*time.Hour
}

// nonceClock reads the server's clock from a nonce, for the servers whose
// nonces carry it (pion/turn's), with the reading's precision. coturn's
// nonces are random: no clock. pion/turn's current nonces are base36
// (upper case) of 4 bytes of Unix minutes and a 12-byte HMAC; its older
// ones 40 bytes in hex, the first 8 Unix milliseconds. A time more than
// ten years from near is taken for another server's random nonce.
func nonceClock(nonce string, near time.Time) (t time.Time, precision time.Duration, ok bool) {
	switch {
	case len(nonce) == 80:
		b, err := hex.DecodeString(nonce[:16])
		if err != nil {
			return time.Time{}, 0, false
		}
		if ms := binary.BigEndian.Uint64(b); ms < 1<<62 {
			t, precision = time.UnixMilli(int64(ms)), time.Millisecond
		}
	case len(nonce) >= 20 && len(nonce) <= 26 && strings.Trim(nonce, base36) == "":
		n, ok := new(big.Int).SetString(nonce, 36)
		if !ok || n.BitLen() > 128 {
			return time.Time{}, 0, false
		}
		b := n.FillBytes(make([]byte, 16))
		minutes := int64(binary.BigEndian.Uint32(b[:4]))
		// The nonce was made within the minute: the middle of it is the
		// best guess, half a minute either way.
		t, precision = time.Unix(minutes*60+30, 0), 30*time.Second
	}
	if t.IsZero() {
		return time.Time{}, 0, false
	}
	if d := t.Sub(near); d > 10*365*24*time.Hour || d < -10*365*24*time.Hour {
		return time.Time{}, 0, false
	}
	return t, precision, true
}

const base36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// restClock explains refused REST credentials with the clocks: the user
// name's expiry against this host's clock and, when the server revealed
// its time, the skew between the two. "" when the expiry is unknown.
func restClock(f Failure) string {
	if f.Expiry.IsZero() || f.Now.IsZero() {
		return ""
	}
	at := f.Expiry.UTC().Format(time.RFC3339)
	var s string
	if !f.Expiry.After(f.Now) {
		s = fmt.Sprintf("the credentials expired at %s by this host's clock, %s ago: make new ones, or correct this host's clock", at, seconds(f.Now.Sub(f.Expiry)))
	} else {
		s = fmt.Sprintf("the credentials are valid until %s by this host's clock: if the server still refuses them, its clock or its secret differs (or the realm)", at)
	}
	if !f.SkewKnown {
		return s + "; the clock skew cannot be read from this server (it reveals no time: coturn does not), compare `date -u` on both hosts"
	}
	read, margin := "read from its nonce", ""
	if p := f.SkewPrecision; p >= time.Second {
		read = fmt.Sprintf("read from its nonce, to %s", seconds(2*p))
		margin = fmt.Sprintf(" (give or take %s)", seconds(p))
	}
	switch d := f.ServerSkew; {
	case d < time.Second+f.SkewPrecision && d > -time.Second-f.SkewPrecision:
		return s + fmt.Sprintf("; the server's clock (%s) agrees with this host's", read)
	case d > 0:
		return s + fmt.Sprintf("; the server's clock (%s) is %s ahead of this host's%s", read, seconds(d), margin)
	default:
		return s + fmt.Sprintf("; the server's clock (%s) is %s behind this host's%s", read, seconds(-d), margin)
	}
}

// seconds is "N s", with a rounder form when it is long.
func seconds(d time.Duration) string {
	s := fmt.Sprintf("%d s", int64(d/time.Second))
	switch {
	case d >= 48*time.Hour:
		s += fmt.Sprintf(" (%d days)", int64(d/(24*time.Hour)))
	case d >= 2*time.Minute:
		s += " (" + strings.TrimSuffix(d.Round(time.Minute).String(), "0s") + ")"
	}
	return s
}

package rendezvous

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// A blob is sealed with AES-256-GCM under the code's encryption key, with a
// random 96-bit nonce (each key seals two blobs in its life: random nonces
// cannot collide in any useful sense). The associated data binds the
// sealed blob to the protocol version, the lookup key and the sender's
// role, so the server can neither move a blob to another code nor hand a
// side its own blob back as the other's.
const (
	nonceSize = 12
	tagSize   = 16
	// Overhead is what sealing adds to a blob.
	Overhead = nonceSize + tagSize
	// MaxBlob bounds the blob each side hands over (a natcheck peer ticket).
	MaxBlob = 2048
	// maxSealed is the largest sealed blob the server stores.
	maxSealed = MaxBlob + Overhead
)

// Role is a side's part in a rendezvous: the creator of the code is the
// controlling ICE agent, the joiner the controlled one.
type Role uint8

const (
	Creator Role = 0
	Joiner  Role = 1
)

func (r Role) String() string {
	if r == Creator {
		return "creator"
	}
	return "joiner"
}

// ErrOpen means a sealed blob did not decrypt: it was not sealed with this
// code for this role (tampered with, or not from the other side).
var ErrOpen = errors.New("rendezvous: the other side's data did not decrypt with this code")

func ad(k *keys, from Role) []byte {
	a := make([]byte, 0, len(hkdfSalt)+LookupKeySize+1)
	a = append(a, hkdfSalt...)
	a = append(a, k.lookup[:]...)
	return append(a, byte(from))
}

func aead(k *keys) cipher.AEAD {
	b, err := aes.NewCipher(k.seal[:])
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// seal encrypts blob as sent by role from: nonce || ciphertext || tag.
func seal(k *keys, from Role, blob []byte) ([]byte, error) {
	if len(blob) > MaxBlob {
		return nil, ErrBlobTooLarge
	}
	out := make([]byte, nonceSize, nonceSize+len(blob)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead(k).Seal(out, out[:nonceSize], blob, ad(k, from)), nil
}

// open decrypts a blob sealed by role from.
func open(k *keys, from Role, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || len(sealed) > maxSealed {
		return nil, ErrOpen
	}
	p, err := aead(k).Open(nil, sealed[:nonceSize], sealed[nonceSize:], ad(k, from))
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}

// Package auth authenticates API callers by bearer token and decides what
// an authenticated identity may do.
//
// A token on the wire is "ouro_<name>_<secret>": name (12 lower-case base32
// characters) finds the Token (or JoinToken) object, and the secret (32
// random bytes, base32 without padding) is checked against the SHA-256 hash
// kept in its status. Tokens are high-entropy, so a fast hash is the right
// one; comparisons are constant-time.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// Prefix starts every token on the wire.
const Prefix = "ouro_"

const (
	nameLen     = 12
	secretBytes = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrMalformed is returned by Parse for strings that are not tokens.
var ErrMalformed = errors.New("malformed token")

// NewSecret makes a new token: its name, its secret and the wire form
// "ouro_<name>_<secret>" that the holder sends as bearer.
func NewSecret() (name, secret, wire string) {
	nb := make([]byte, 10) // 80 bits: 16 base32 characters, 12 used
	sb := make([]byte, secretBytes)
	// crypto/rand.Read never fails (Go 1.24+).
	rand.Read(nb)
	rand.Read(sb)
	name = strings.ToLower(b32.EncodeToString(nb))[:nameLen]
	secret = strings.ToLower(b32.EncodeToString(sb))
	return name, secret, Prefix + name + "_" + secret
}

// Parse splits a wire token into its name and secret.
func Parse(wire string) (name, secret string, err error) {
	rest, ok := strings.CutPrefix(wire, Prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	name, secret, ok = strings.Cut(rest, "_")
	if !ok || len(name) != nameLen || !isBase32Lower(name) {
		return "", "", ErrMalformed
	}
	if b, err := b32.DecodeString(strings.ToUpper(secret)); err != nil || len(b) != secretBytes {
		return "", "", ErrMalformed
	}
	return name, secret, nil
}

// Hash returns the hex SHA-256 of a secret, as kept in TokenStatus.SecretHash.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Verify reports, in constant time, whether secret hashes to hash.
func Verify(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(hash)) == 1
}

func isBase32Lower(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

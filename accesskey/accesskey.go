// Package accesskey makes AWS-style access keys (an id "AKIA…" of 20
// characters and a secret of 40) and keeps their secrets sealed at rest:
// the EC2 API must recompute SigV4 signatures, so it needs each secret
// back, which a hash would not give. A Sealer encrypts secrets with
// AES-256-GCM under a key derived from the cluster CA's private key
// (pki.CA.DeriveKey, HKDF-SHA256 with the purpose label Purpose), which
// every server of the cluster holds and etcd never does; the access key
// id is the additional data, so a sealed secret cannot be moved to
// another key's object.
package accesskey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Purpose is the HKDF label of the sealing key.
const Purpose = "ouro accesskey secrets v1"

// IDPrefix starts every access key id, as AWS's long-term keys do.
const IDPrefix = "AKIA"

const (
	idAlphabet     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	idLen          = 20
	secretLen      = 40
)

// New makes an access key id and secret: 80 random bits in the id's 16
// characters after the prefix, 240 in the secret.
func New() (id, secret string) {
	return IDPrefix + random(idAlphabet, idLen-len(IDPrefix)), random(secretAlphabet, secretLen)
}

// random returns n characters of alphabet (of 32 or 64 characters, so
// every byte maps without bias).
func random(alphabet string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ValidID reports whether id has the form New makes.
func ValidID(id string) bool {
	if len(id) != idLen || !strings.HasPrefix(id, IDPrefix) {
		return false
	}
	for _, c := range id[len(IDPrefix):] {
		if !strings.ContainsRune(idAlphabet, c) {
			return false
		}
	}
	return true
}

// Name returns the AccessKey object's name for an id: the id in lower
// case (a valid resource name).
func Name(id string) string { return strings.ToLower(id) }

// Sealer seals and opens secrets.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("accesskey: the sealing key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("accesskey: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("accesskey: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts the secret of access key id.
func (s *Sealer) Seal(id, secret string) string {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), []byte(id)))
}

// Open decrypts what Seal made for id.
func (s *Sealer) Open(id, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("accesskey: sealed secret is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("accesskey: open the secret of %s: %w", id, err)
	}
	return string(plain), nil
}

package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password bounds. Passwords are for people signing in to the console;
// programs use tokens.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 1024
)

// The argon2id parameters of new hashes (RFC 9106's second recommended
// option, with two lanes for small servers). Each hash keeps its own, so
// they may change without breaking stored passwords.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	argonSaltLen = 16
)

// ErrPasswordMismatch is returned by CheckPassword for a wrong password.
var ErrPasswordMismatch = errors.New("password does not match")

// hashSlots bounds concurrent password hashing: each takes argonMemory.
var hashSlots = make(chan struct{}, 4)

// ValidatePassword says what is wrong with a new password, or nil.
func ValidatePassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return errors.New("it is not valid UTF-8")
	case n < MinPasswordLength:
		return fmt.Errorf("it has %d characters; use at least %d", n, MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		return fmt.Errorf("it is longer than %d bytes", MaxPasswordLength)
	case strings.TrimSpace(pw) == "":
		return errors.New("it is only white space")
	}
	return nil
}

// HashPassword returns the argon2id hash of pw with a random salt, in the
// PHC string format: $argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>.
func HashPassword(pw string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := derive(pw, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

var b64 = base64.RawStdEncoding

// CheckPassword reports whether pw matches hash (from HashPassword):
// nil, ErrPasswordMismatch, or an error for a hash it cannot read.
func CheckPassword(pw, hash string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("password hash: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return fmt.Errorf("password hash: unsupported version %q", parts[2])
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return fmt.Errorf("password hash: parameters %q: %w", parts[3], err)
	}
	if mem == 0 || mem > 1<<20 || t == 0 || t > 16 || p == 0 {
		return fmt.Errorf("password hash: parameters %q out of range", parts[3])
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return errors.New("password hash: key is not valid")
	}
	got := derive(pw, salt, t, mem, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// dummyHash is checked against when a user has no password, so that the
// answer takes as long as for a wrong password.
// It is made on first use, not when every program importing auth starts.
var dummyHash = sync.OnceValue(func() string { return HashPassword("not the password of anyone") })

// CheckNoPassword spends the time of one CheckPassword and returns
// ErrPasswordMismatch: for users that do not exist or have no password.
func CheckNoPassword(pw string) error {
	CheckPassword(pw, dummyHash())
	return ErrPasswordMismatch
}

func derive(pw string, salt []byte, t, mem uint32, p uint8, keyLen uint32) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(pw), salt, t, mem, p, keyLen)
}

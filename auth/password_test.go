package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestHashAndCheckPassword(t *testing.T) {
	h := HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q lacks its parameters", h)
	}
	if h2 := HashPassword("correct horse battery"); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if err := CheckPassword("correct horse battery", h); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, tc := range []struct {
		name, pw, hash string
		want           error
	}{
		{"wrong", "correct horse batterx", h, ErrPasswordMismatch},
		{"empty", "", h, ErrPasswordMismatch},
		{"not argon2id", "x", "$2a$10$abc", nil},
		{"bad params", "x", "$argon2id$v=19$m=0,t=3,p=2$AAAA$AAAA", nil},
		{"huge memory", "x", "$argon2id$v=19$m=99999999,t=3,p=2$AAAA$AAAA", nil},
		{"bad version", "x", "$argon2id$v=16$m=65536,t=3,p=2$AAAA$AAAA", nil},
		{"bad salt", "x", "$argon2id$v=19$m=65536,t=3,p=2$!!$AAAA", nil},
	} {
		err := CheckPassword(tc.pw, tc.hash)
		if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && (err == nil || errors.Is(err, ErrPasswordMismatch)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := CheckNoPassword("anything"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("CheckNoPassword: %v", err)
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want string // part of the error; "" for none
	}{
		{"abcdefghijkl", ""},
		{"ünïcödé pässwörd", ""},
		{"abcdefghijk", "use at least 12"},
		{"", "has 0 characters"},
		{"            ", "white space"},
		{strings.Repeat("x", MaxPasswordLength+1), "longer than"},
		{"abcdefghijkl\xff", "UTF-8"},
	} {
		err := ValidatePassword(tc.pw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.pw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%.20q: %v, want %q", tc.pw, err, tc.want)
		}
	}
}

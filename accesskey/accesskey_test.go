package accesskey

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	id, secret := New()
	if !ValidID(id) || len(secret) != 40 {
		t.Fatalf("New() = %q, %q", id, secret)
	}
	id2, _ := New()
	if id == id2 {
		t.Fatal("two keys with one id")
	}
	for _, bad := range []string{"", "AKIA", "akia" + id[4:], "ASIA" + id[4:], id + "A", id[:19] + "1"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestSeal(t *testing.T) {
	s, err := NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	id, secret := New()
	sealed := s.Seal(id, secret)
	if strings.Contains(sealed, secret) {
		t.Fatal("the sealed form contains the secret")
	}
	got, err := s.Open(id, sealed)
	if err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := New()
	if _, err := s.Open(other, sealed); err == nil {
		t.Error("a sealed secret opened under another key id")
	}
	s2, _ := NewSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := s2.Open(id, sealed); err == nil {
		t.Error("a sealed secret opened with another cluster's key")
	}
	if _, err := s.Open(id, "!!"); err == nil {
		t.Error("garbage opened")
	}
}

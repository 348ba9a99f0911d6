package bootstrap

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKnownHosts checks trust on first use: an unknown key is refused
// unless new keys are accepted, then recorded; a changed key is refused
// whatever the setting.
func TestKnownHosts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 22}
	key, other := newHostKey(t), newHostKey(t)

	strict := &KnownHosts{File: file}
	cb, err := strict.callback()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("10.0.0.1:22", addr, key); err == nil || !strings.Contains(err.Error(), "--accept-new-host-keys") {
		t.Fatalf("unknown key without accepting: %v", err)
	}

	// A check accepts the new key for its run and records nothing.
	check := &KnownHosts{File: file, AcceptNew: true, DontRecord: true}
	cb, err = check.callback()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("10.0.0.1:22", addr, key); err != nil {
		t.Fatalf("new key, accepting without recording: %v", err)
	}
	if cb, _ := strict.callback(); cb("10.0.0.1:22", addr, key) == nil {
		t.Fatal("a check recorded the new key")
	}

	tofu := &KnownHosts{File: file, AcceptNew: true}
	cb, err = tofu.callback()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("10.0.0.1:22", addr, key); err != nil {
		t.Fatalf("new key, accepting: %v", err)
	}
	// Read again: the key is known now, to a strict check too.
	for _, k := range []*KnownHosts{strict, tofu} {
		cb, err := k.callback()
		if err != nil {
			t.Fatal(err)
		}
		if err := cb("10.0.0.1:22", addr, key); err != nil {
			t.Errorf("recorded key (accept %v): %v", k.AcceptNew, err)
		}
		if err := cb("10.0.0.1:22", addr, other); err == nil || !strings.Contains(err.Error(), "changed") {
			t.Errorf("changed key (accept %v): %v", k.AcceptNew, err)
		}
	}

	// A host reached through a tunnel: its connection's address is no
	// HOST:PORT, its key is known by an alias.
	cb, err = tofu.callback()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("ouro-default-vm1:22", tunnel{}, key); err != nil {
		t.Fatalf("new key through a tunnel: %v", err)
	}
	if cb, _ := strict.callback(); cb("ouro-default-vm1:22", tunnel{}, key) != nil || cb("ouro-default-vm1:22", tunnel{}, other) == nil {
		t.Fatal("the tunnelled host's key is not checked by its alias")
	}
}

// tunnel is the address of a connection that is not TCP.
type tunnel struct{}

func (tunnel) Network() string { return "ouro-portforward" }
func (tunnel) String() string  { return "tunnel" }

// TestQuote runs quoted words through a real shell: each comes back as
// one word, unchanged.
func TestQuote(t *testing.T) {
	words := []string{"plain", "it's", "$(echo expanded)", "a b", "`x`", "\\", "'", "", "\n"}
	out, err := exec.Command("/bin/sh", "-c", `for w in `+sh(words...)+`; do printf '%s\0' "$w"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(words, "|") {
		t.Errorf("the shell read %q, want %q", got, words)
	}
}

package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestCreateDoDelete(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ouro-test")
	// A placeholder left by a crash before the mount is reused.
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if IsNamespace(path) {
		t.Fatal("a plain file counts as a namespace")
	}
	created, err := Create(path)
	if err != nil || !created {
		t.Fatalf("Create = %v, %v; want true, nil", created, err)
	}
	t.Cleanup(func() { Delete(path) })
	if !IsNamespace(path) {
		t.Fatal("Create did not mount a namespace")
	}
	if created, err := Create(path); err != nil || created {
		t.Fatalf("second Create = %v, %v; want false, nil", created, err)
	}

	// Inside, the namespace is new: only lo, and its own sysctls.
	self, _ := os.Readlink("/proc/thread-self/ns/net")
	var inside string
	if err := Do(path, func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == self {
		t.Fatal("Do ran in the caller's namespace")
	}
	if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != self {
		t.Fatalf("Do did not restore the namespace: %s, want %s", after, self)
	}
	if err := WriteSysctl(path, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	var v []byte
	Do(path, func() error { v, _ = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); return nil })
	if strings.TrimSpace(string(v)) != "1" {
		t.Errorf("ip_forward in namespace = %q, want 1", v)
	}
	names, err := List(dir, "ouro-")
	if err != nil || len(names) != 1 || names[0] != "ouro-test" {
		t.Errorf("List = %v, %v", names, err)
	}

	if err := Delete(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Delete left %s", path)
	}
	if err := Delete(path); err != nil {
		t.Errorf("Delete of a missing namespace: %v", err)
	}
}

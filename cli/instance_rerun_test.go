package cli

import (
	"strings"
	"testing"
)

// TestInstanceCreateCountRerun runs an interrupted --count create again:
// the rerun makes only the missing instances and succeeds, and a
// different request for the same names still fails clearly.
func TestInstanceCreateCountRerun(t *testing.T) {
	f := newFakeAPI(t)
	f.useConfig(t)
	args := []string{"instance", "create", "web", "--image", "alpine", "--flavor", "small", "--count", "3"}

	f.mu.Lock()
	f.refuseCreate = map[string]bool{"web-2": true}
	f.mu.Unlock()
	if r := runCLI(t, nil, "", args...); r.code == 0 {
		t.Fatalf("first run succeeded although web-2 was refused:\n%s", r.stdout)
	}
	f.mu.Lock()
	if got := f.sortedInstances("demo"); len(got) != 1 || got[0].Metadata.Name != "web-1" {
		t.Fatalf("after the interrupted run: %d instances, want web-1 alone", len(got))
	}
	uid1 := f.instances["web-1"].Metadata.UID
	f.refuseCreate = nil
	f.mu.Unlock()

	r := runCLI(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d: %s", r.code, r.stderr)
	}
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		if !strings.Contains(r.stdout, n) {
			t.Errorf("rerun output lacks %s:\n%s", n, r.stdout)
		}
	}
	f.mu.Lock()
	got := f.sortedInstances("demo")
	f.mu.Unlock()
	var names []string
	for _, inst := range got {
		names = append(names, inst.Metadata.Name)
	}
	if strings.Join(names, ",") != "web-1,web-2,web-3" {
		t.Errorf("after the rerun: instances %v, want web-1,web-2,web-3", names)
	}
	if got[0].Metadata.UID != uid1 {
		t.Errorf("web-1 was replaced: uid %s, was %s", got[0].Metadata.UID, uid1)
	}

	// An instance deleted since is made again by the same command, under
	// a fresh key; the others are left as they are.
	f.mu.Lock()
	delete(f.instances, "web-3")
	f.mu.Unlock()
	if r := runCLI(t, nil, "", args...); r.code != 0 {
		t.Fatalf("rerun after deleting web-3: exit %d: %s", r.code, r.stderr)
	}
	f.mu.Lock()
	again := f.sortedInstances("demo")
	f.mu.Unlock()
	if len(again) != 3 || again[2].Metadata.Name != "web-3" || again[0].Metadata.UID != uid1 {
		t.Errorf("after deleting web-3 and running again: %d instances, want web-1 kept and web-3 made again", len(again))
	}

	// A different request for the same names is not a rerun.
	other := append([]string{}, args...)
	other[4] = "busybox"
	r = runCLI(t, nil, "", other...)
	if r.code == 0 {
		t.Fatalf("a different request for existing names succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{"web-1", "metadata.name", "already exists"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q: %s", want, r.stderr)
		}
	}
}

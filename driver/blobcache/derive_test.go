package blobcache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// waitFor fails the test unless cond holds within a few seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// copyBuild is a BuildFunc that writes the blob's content, and the
// variant, into dir/content; it counts its calls.
type copyBuild struct {
	calls atomic.Int64
	err   error
}

func (c *copyBuild) build(ctx context.Context, b api.Blob, blobPath, variant, dir string) error {
	c.calls.Add(1)
	data, err := os.ReadFile(blobPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "content"), append(data, variant...), 0o644); err != nil {
		return err
	}
	return c.err
}

func newDerived(t *testing.T) (*Derived, *fakeSource, *copyBuild) {
	t.Helper()
	src := newFakeSource()
	root := t.TempDir()
	cb := &copyBuild{}
	return NewDerived(New(filepath.Join(root, "blobs"), src, quiet), filepath.Join(root, "layers"), cb.build, quiet), src, cb
}

func TestKeys(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		digest, variant string
		key             string // "" for an error
	}{
		{"sha256:" + h, "", h},
		{"sha256:" + h, "u100000-65536", h + "-u100000-65536"},
		{"sha256:" + h, "-x", ""},
		{"sha256:" + h, "a--b", ""},
		{"sha256:" + h, "../x", ""},
		{"sha256:" + h, "A", ""},
		{"sha256:" + h, "a.b", ""},
		{"sha256:x", "", ""},
	}
	for _, tc := range tests {
		key, err := Key(tc.digest, tc.variant)
		if (err != nil) != (tc.key == "") || key != tc.key {
			t.Errorf("Key(%q, %q) = %q, %v; want %q", tc.digest, tc.variant, key, err, tc.key)
			continue
		}
		if tc.key == "" {
			continue
		}
		d, v, ok := ParseKey(key)
		if !ok || d != tc.digest || v != tc.variant {
			t.Errorf("ParseKey(%q) = %q, %q, %v; want %q, %q", key, d, v, ok, tc.digest, tc.variant)
		}
	}
	for _, bad := range []string{"", h[:63], h + "-", h + "x", ".tmp-" + h + "-1", h + "-a.b"} {
		if _, _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestEnsureBuildsOncePerKey(t *testing.T) {
	d, src, cb := newDerived(t)
	src.gate = make(chan struct{})
	b := src.add([]byte("layer"))

	var wg sync.WaitGroup
	const n = 6
	dirs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		variant := []string{"", "v1"}[i%2]
		wg.Go(func() { dirs[i], errs[i] = d.Ensure(context.Background(), b, variant) })
	}
	close(src.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[i%2] {
			t.Fatalf("call %d: %q, %v", i, dirs[i], errs[i])
		}
	}
	if got := src.opens.Load(); got != 1 {
		t.Errorf("blob opened %d times, want once for both variants", got)
	}
	if got := cb.calls.Load(); got != 2 {
		t.Errorf("built %d times, want once per variant", got)
	}
	for i, want := range []string{"layer", "layerv1"} {
		if data, err := os.ReadFile(filepath.Join(dirs[i], "content")); err != nil || string(data) != want {
			t.Errorf("variant %d: content %q, %v; want %q", i, data, err, want)
		}
		if fi, err := os.Stat(dirs[i]); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("variant %d: mode %v, %v; want 0755", i, fi.Mode(), err)
		}
	}
	keys, err := d.Keys()
	if err != nil || len(keys) != 2 {
		t.Errorf("Keys = %v, %v; want two", keys, err)
	}
}

func TestEnsureFailures(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(src *fakeSource, cb *copyBuild, b *api.Blob)
		want     string
		blobLeft bool
	}{
		{"digest mismatch", func(src *fakeSource, cb *copyBuild, b *api.Blob) { src.blobs[b.Digest] = []byte("evil") }, "digest mismatch", false},
		{"truncated stream", func(src *fakeSource, cb *copyBuild, b *api.Blob) { src.failAt[b.Digest] = 2 }, "unexpected EOF", false},
		{"build fails", func(src *fakeSource, cb *copyBuild, b *api.Blob) { cb.err = errors.New("refused entry") }, "refused entry", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, src, cb := newDerived(t)
			b := src.add([]byte("a layer"))
			tc.setup(src, cb, &b)
			_, err := d.Ensure(context.Background(), b, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), b.Digest) {
				t.Fatalf("Ensure = %v, want an error naming the digest and saying %q", err, tc.want)
			}
			if left := entries(t, d.Dir()); len(left) > 0 {
				t.Errorf("a failed build left %v", left)
			}
			if got := len(entries(t, d.blobs.Dir())) == 1; got != tc.blobLeft {
				t.Errorf("blob cached = %v, want %v", got, tc.blobLeft)
			}
		})
	}
}

func TestEnsureCrashLeftovers(t *testing.T) {
	d, src, _ := newDerived(t)
	b := src.add([]byte("a layer"))
	h, _ := Hex(b.Digest)
	other := h + "-v1" // another variant's build, in progress or not
	for _, name := range []string{".tmp-" + h + "-123", ".tmp-" + h + "-prune", ".tmp-" + other + "-456"} {
		writeFile(t, filepath.Join(d.Dir(), name, "junk"), "x")
	}
	if _, err := d.Ensure(context.Background(), b, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{".tmp-" + other + "-456", h}
	if got := entries(t, d.Dir()); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after Ensure: %v, want %v (only this key's leftovers removed)", got, want)
	}
	if err := d.Clean(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, d.Dir()); len(got) != 1 || got[0] != h {
		t.Errorf("after Clean: %v, want only %s", got, h)
	}
}

func TestDerivedRemove(t *testing.T) {
	d, src, cb := newDerived(t)
	b := src.add([]byte("a layer"))
	dir, err := d.Ensure(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Base(dir)
	if err := d.Remove(key); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(key); err != nil {
		t.Errorf("removing a missing directory: %v", err)
	}
	if err := d.Remove("../x"); err == nil {
		t.Error("a key that is a path was accepted")
	}
	if left := entries(t, d.Dir()); len(left) > 0 {
		t.Errorf("left %v", left)
	}
	// Built again from the cached blob, without a fetch.
	if _, err := d.Ensure(context.Background(), b, ""); err != nil {
		t.Fatal(err)
	}
	if src.opens.Load() != 1 || cb.calls.Load() != 2 {
		t.Errorf("%d fetches and %d builds, want 1 and 2", src.opens.Load(), cb.calls.Load())
	}
}

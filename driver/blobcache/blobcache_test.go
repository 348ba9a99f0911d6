package blobcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// quiet drops the caches' logs.
var quiet = slog.New(slog.DiscardHandler)

// fakeSource serves blobs from memory and counts the opens.
type fakeSource struct {
	mu    sync.Mutex
	blobs map[string][]byte
	// failAt, when set for a digest, ends its stream with an error after
	// that many bytes.
	failAt map[string]int
	opens  atomic.Int64
	// gate, when not nil, holds every Open until it is closed.
	gate chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{blobs: map[string][]byte{}, failAt: map[string]int{}}
}

// add stores content under its digest and returns the blob.
func (s *fakeSource) add(content []byte) api.Blob {
	sum := sha256.Sum256(content)
	b := api.Blob{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(content))}
	s.mu.Lock()
	s.blobs[b.Digest] = content
	s.mu.Unlock()
	return b
}

func (s *fakeSource) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	s.opens.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.blobs[digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: not found", digest)
	}
	if n, ok := s.failAt[digest]; ok {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data[:n]), errReader{})), nil
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchRefusesBadContent(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *fakeSource, b *api.Blob)
		check func(string) error
		want  string
	}{
		{
			name:  "content does not match the digest",
			setup: func(s *fakeSource, b *api.Blob) { s.blobs[b.Digest] = []byte("evil content") },
			want:  "digest mismatch",
		},
		{
			name:  "truncated stream",
			setup: func(s *fakeSource, b *api.Blob) { s.blobs[b.Digest] = s.blobs[b.Digest][:5] },
			want:  "digest mismatch",
		},
		{
			name:  "stream fails midway",
			setup: func(s *fakeSource, b *api.Blob) { s.failAt[b.Digest] = 5 },
			want:  "unexpected EOF",
		},
		{
			name:  "size differs from the image's",
			setup: func(s *fakeSource, b *api.Blob) { b.Size = 3 },
			want:  "size mismatch",
		},
		{
			name:  "source does not have it",
			setup: func(s *fakeSource, b *api.Blob) { delete(s.blobs, b.Digest) },
			want:  "not found",
		},
		{
			name:  "check refuses it",
			check: func(string) error { return errors.New("not a disk") },
			want:  "not a disk",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource()
			c := New(t.TempDir(), src, quiet)
			b := src.add([]byte("the content of " + tc.name))
			if tc.setup != nil {
				tc.setup(src, &b)
			}
			_, err := c.Fetch(context.Background(), b, tc.check)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), b.Digest) {
				t.Fatalf("Fetch = %v, want an error naming the digest and saying %q", err, tc.want)
			}
			if left := entries(t, c.Dir()); len(left) > 0 {
				t.Errorf("a refused blob left %v", left)
			}
		})
	}
}

func TestFetchRefusesBadDigests(t *testing.T) {
	c := New(t.TempDir(), newFakeSource(), quiet)
	for _, d := range []string{"", "sha256:../../etc/passwd", "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64)} {
		if _, err := c.Fetch(context.Background(), api.Blob{Digest: d}, nil); err == nil {
			t.Errorf("digest %q accepted", d)
		}
	}
}

func TestFetchConcurrentFetchesOnce(t *testing.T) {
	src := newFakeSource()
	src.gate = make(chan struct{})
	c := New(t.TempDir(), src, quiet)
	b := src.add([]byte("a kernel"))

	const n = 8
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { paths[i], errs[i] = c.Fetch(context.Background(), b, nil) })
	}
	close(src.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("call %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if got := src.opens.Load(); got != 1 {
		t.Errorf("%d concurrent fetches opened the blob %d times, want once", n, got)
	}
	if data, err := os.ReadFile(paths[0]); err != nil || string(data) != "a kernel" {
		t.Errorf("cached content %q, %v", data, err)
	}
	if fi, err := os.Stat(paths[0]); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("cached blob mode %v (%v), want read-only 0444", fi.Mode(), err)
	}
	if p, _ := c.Path(b.Digest); p != paths[0] {
		t.Errorf("Path = %q, want %q", p, paths[0])
	}
	// Cached: no second fetch.
	if _, err := c.Fetch(context.Background(), b, nil); err != nil || src.opens.Load() != 1 {
		t.Errorf("fetch of a cached blob: %v, %d opens", err, src.opens.Load())
	}
}

// TestCrashLeftovers plants what a crash at each step can leave and
// checks that the cache recovers.
func TestCrashLeftovers(t *testing.T) {
	tests := []struct {
		name string
		// plant makes the leftover in dir for the blob of hex h.
		plant func(t *testing.T, dir, h string)
		// survives is a leftover that is not the cache's to remove.
		survives string
	}{
		{"partial download", func(t *testing.T, dir, h string) {
			writeFile(t, filepath.Join(dir, ".tmp-"+h+"-123"), "the con")
		}, ""},
		{"interrupted removal", func(t *testing.T, dir, h string) {
			writeFile(t, filepath.Join(dir, ".tmp-"+h+"-prune"), "the content")
		}, ""},
		{"someone else's file", func(t *testing.T, dir, h string) {
			writeFile(t, filepath.Join(dir, "README"), "mine")
		}, "README"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, how := range []string{"fetch", "clean"} {
				t.Run(how, func(t *testing.T) {
					src := newFakeSource()
					c := New(t.TempDir(), src, quiet)
					b := src.add([]byte("the content"))
					h, _ := Hex(b.Digest)
					tc.plant(t, c.Dir(), h)
					want := []string{h}
					if how == "fetch" {
						if _, err := c.Fetch(context.Background(), b, nil); err != nil {
							t.Fatal(err)
						}
					} else {
						if err := c.Clean(); err != nil {
							t.Fatal(err)
						}
						want = nil
					}
					if tc.survives != "" {
						want = append(want, tc.survives)
					}
					slices.Sort(want)
					if got := entries(t, c.Dir()); strings.Join(got, ",") != strings.Join(want, ",") {
						t.Errorf("left %v, want %v", got, want)
					}
				})
			}
		})
	}
}

func TestCleanSparesFetchInProgress(t *testing.T) {
	src := newFakeSource()
	src.gate = make(chan struct{})
	c := New(t.TempDir(), src, quiet)
	b := src.add([]byte("slow content"))
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(context.Background(), b, nil)
		done <- err
	}()
	// Wait until the fetch holds its temporary file.
	waitFor(t, func() bool { return len(entries(t, c.Dir())) == 1 })
	cleaned := make(chan error, 1)
	go func() { cleaned <- c.Clean() }()
	close(src.gate)
	if err := <-done; err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if err := <-cleaned; err != nil {
		t.Fatalf("clean: %v", err)
	}
	h, _ := Hex(b.Digest)
	if got := entries(t, c.Dir()); len(got) != 1 || got[0] != h {
		t.Errorf("left %v, want only the blob", got)
	}
}

func TestRemoveAndDigests(t *testing.T) {
	src := newFakeSource()
	c := New(t.TempDir(), src, quiet)
	a, b := src.add([]byte("a")), src.add([]byte("b"))
	for _, bl := range []api.Blob{a, b} {
		if _, err := c.Fetch(context.Background(), bl, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Remove(a.Digest); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(a.Digest); err != nil {
		t.Errorf("removing a missing blob: %v", err)
	}
	got, err := c.Digests()
	if err != nil || len(got) != 1 || got[0] != b.Digest {
		t.Errorf("Digests = %v, %v; want only %s", got, err, b.Digest)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

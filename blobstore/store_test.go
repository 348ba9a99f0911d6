package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestPut(t *testing.T) {
	data := []byte("hello blob")
	lost := errors.New("connection lost")
	tests := []struct {
		name   string
		digest string
		r      io.Reader
		check  func(t *testing.T, err error)
	}{
		{"stored", digestOf(data), bytes.NewReader(data), func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"wrong digest", digestOf([]byte("other")), bytes.NewReader(data), func(t *testing.T, err error) {
			var de *DigestError
			if !errors.As(err, &de) || de.Got != digestOf(data) {
				t.Fatalf("err = %v, want a DigestError", err)
			}
		}},
		{"reader fails", digestOf(data), &failingReader{data: data[:4], err: lost}, func(t *testing.T, err error) {
			var re *ReadError
			if !errors.As(err, &re) || re.N != 4 || !errors.Is(err, lost) {
				t.Fatalf("err = %v, want a ReadError after 4 bytes", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t.TempDir(), nil)
			n, err := s.Put(tt.digest, tt.r, -1)
			tt.check(t, err)
			entries, _ := os.ReadDir(s.Dir())
			if err != nil {
				if len(entries) != 0 {
					t.Errorf("a failed put left %d files", len(entries))
				}
				return
			}
			if n != int64(len(data)) || len(entries) != 1 {
				t.Errorf("put %d bytes, %d files", n, len(entries))
			}
			f, info, err := s.Open(tt.digest)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, _ := io.ReadAll(f)
			if !bytes.Equal(got, data) || info.Size() != int64(len(data)) {
				t.Errorf("read back %q (size %d)", got, info.Size())
			}
		})
	}
}

func TestOpenMissing(t *testing.T) {
	s := New(t.TempDir(), nil)
	if _, _, err := s.Open(digestOf([]byte("none"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open = %v, want ErrNotExist", err)
	}
	if _, err := s.Stat(digestOf([]byte("none"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat = %v, want ErrNotExist", err)
	}
}

func TestSweep(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "blobs"), nil)
	if err := s.Sweep(context.Background(), nil); err != nil {
		t.Fatalf("sweep of a store never written: %v", err)
	}
	put := func(content string, age time.Duration) string {
		t.Helper()
		d := digestOf([]byte(content))
		if _, err := s.Put(d, bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
			t.Fatal(err)
		}
		s.Touch(d, time.Now().Add(-age))
		return d
	}
	oldUsed := put("old, in use", 2*UnreferencedBlobAge)
	oldUnused := put("old, unused", 2*UnreferencedBlobAge)
	young := put("young, unused", 0)
	crash := filepath.Join(s.Dir(), tempPrefix+"crash")
	if err := os.WriteFile(crash, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An upload in progress keeps its temporary file.
	busy, err := os.CreateTemp(s.Dir(), tempPrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	busy.Close()
	s.uploads[busy.Name()] = true

	inUse := func(context.Context) (map[string]bool, error) { return map[string]bool{oldUsed: true}, nil }
	if err := s.Sweep(context.Background(), inUse); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		path string
		keep bool
	}{
		{"old blob in use", s.Path(oldUsed), true},
		{"old unused blob", s.Path(oldUnused), false},
		{"young unused blob", s.Path(young), true},
		{"crash leftover", crash, false},
		{"upload in progress", busy.Name(), true},
	} {
		_, err := os.Stat(tt.path)
		if kept := err == nil; kept != tt.keep {
			t.Errorf("%s: kept %v, want %v", tt.name, kept, tt.keep)
		}
	}

	failed := errors.New("no images")
	if err := s.Sweep(context.Background(), func(context.Context) (map[string]bool, error) { return nil, failed }); !errors.Is(err, failed) {
		t.Errorf("sweep with a failing inUse = %v", err)
	}
}

// TestHoldDelaysSweep checks that a sweep waits for holders of the store.
func TestHoldDelaysSweep(t *testing.T) {
	s := New(t.TempDir(), nil)
	release := s.Hold()
	done := make(chan error, 1)
	go func() {
		done <- s.Sweep(context.Background(), func(context.Context) (map[string]bool, error) { return nil, nil })
	}()
	select {
	case <-done:
		t.Fatal("sweep ran while the store was held")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sweep did not run after release")
	}
}

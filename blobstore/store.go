// Package blobstore keeps content-addressed blobs (image layers, disks,
// kernels) as files named by their SHA-256 digest in one directory.
//
// An upload goes to a temporary file that is hashed while written, synced
// and renamed under its digest only if the digest matches, so a crash never
// leaves a partial blob under a digest name. Sweep removes what crashes
// left behind and blobs nothing refers to any more.
//
// The store knows nothing of callers: the API server authenticates and
// authorizes every request before it reaches the store, and tells Sweep
// which blobs are in use.
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// UnreferencedBlobAge is how old a blob nothing refers to must be before
// Sweep removes it, so uploads have time to become images.
const UnreferencedBlobAge = time.Hour

// tempPrefix starts the names of uploads in progress.
const tempPrefix = ".tmp-"

// hexDigestRE matches the hex part of a sha256 digest, the name of a blob.
var hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Store is a directory of blobs. Its methods are safe for concurrent use.
type Store struct {
	dir string
	log *slog.Logger

	// mu orders users of blobs (read, Hold) against Sweep (write), so a
	// sweep never removes a blob that is about to be referred to.
	mu sync.RWMutex
	// uploads holds temp files of uploads in progress, kept by Sweep.
	uploadsMu sync.Mutex
	uploads   map[string]bool
}

// New returns a Store of the blobs in dir, made when the first blob is
// put. log receives what Sweep removed; nil means slog.Default().
func New(dir string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{dir: dir, log: log, uploads: map[string]bool{}}
}

// Dir returns the directory that holds the blobs.
func (s *Store) Dir() string { return s.dir }

// Path returns the file of the blob with the given hex digest.
func (s *Store) Path(hexDigest string) string { return filepath.Join(s.dir, hexDigest) }

// Open opens the blob with the given hex digest for reading, with its
// file information. A missing blob is an error matching fs.ErrNotExist.
func (s *Store) Open(hexDigest string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(s.Path(hexDigest))
	if err != nil {
		return nil, nil, fmt.Errorf("open blob: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat blob: %w", err)
	}
	return f, info, nil
}

// Stat returns the file information of the blob with the given hex
// digest. A missing blob is an error matching fs.ErrNotExist.
func (s *Store) Stat(hexDigest string) (fs.FileInfo, error) {
	info, err := os.Stat(s.Path(hexDigest))
	if err != nil {
		return nil, fmt.Errorf("stat blob: %w", err)
	}
	return info, nil
}

// Touch sets the blob's modification time to t, so that Sweep's age rule
// does not take a blob something was just made of. Failures are ignored:
// the blob was just checked.
func (s *Store) Touch(hexDigest string, t time.Time) {
	os.Chtimes(s.Path(hexDigest), t, t)
}

// Hold keeps Sweep from running until release is called: hold it from
// checking that blobs exist to storing what refers to them.
func (s *Store) Hold() (release func()) {
	s.mu.RLock()
	return s.mu.RUnlock
}

// NoSpaceError is the error of Put when the blob does not fit on the file
// system.
type NoSpaceError struct {
	Free, Size int64
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("the blob store has %d bytes free; the blob has %d", e.Free, e.Size)
}

// ReadError is the error of Put when reading the blob's content failed
// after N bytes (the client, not the store).
type ReadError struct {
	N   int64
	Err error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("reading the upload failed after %d bytes: %v", e.N, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// DigestError is the error of Put when the content does not hash to the
// digest it was put under.
type DigestError struct {
	Got, Want string // hex digests
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("the body hashes to sha256:%s, not sha256:%s", e.Got, e.Want)
}

// Put stores the content read from r as the blob with the given hex
// digest and returns its size. size is the announced size (-1 if not
// known), checked against the free space before anything is written. The
// blob appears under its name only if the content hashes to the digest.
func (s *Store) Put(hexDigest string, r io.Reader, size int64) (int64, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return 0, fmt.Errorf("create blob directory: %w", err)
	}
	if free, err := freeBytes(s.dir); err == nil && size > free {
		return 0, &NoSpaceError{Free: free, Size: size}
	}
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("create temporary blob: %w", err)
	}
	tmp := f.Name()
	s.uploadsMu.Lock()
	s.uploads[tmp] = true
	s.uploadsMu.Unlock()
	defer func() {
		f.Close()
		os.Remove(tmp) // fails harmlessly after the rename
		s.uploadsMu.Lock()
		delete(s.uploads, tmp)
		s.uploadsMu.Unlock()
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		if errors.Is(err, fs.ErrClosed) || isWriteError(err) {
			return 0, fmt.Errorf("write blob: %w", err)
		}
		return 0, &ReadError{N: n, Err: err}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return 0, &DigestError{Got: got, Want: hexDigest}
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("chmod blob: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close blob: %w", err)
	}
	if err := os.Rename(tmp, s.Path(hexDigest)); err != nil {
		return 0, fmt.Errorf("store blob: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return 0, fmt.Errorf("sync blob directory: %w", err)
	}
	return n, nil
}

// Sweep removes temporary files that no upload in progress owns (left by
// crashes) and blobs that are not in use and older than
// UnreferencedBlobAge. inUse returns the hex digests of the blobs in use;
// it is called with the store held against Hold, so nothing can start
// referring to a blob between inUse and the removal. Sweep is safe to run
// at any time.
func (s *Store) Sweep(ctx context.Context, inUse func(context.Context) (map[string]bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read blob directory: %w", err)
	}
	used, err := inUse(ctx)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-UnreferencedBlobAge)
	var removed, temps int
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, tempPrefix) {
			s.uploadsMu.Lock()
			busy := s.uploads[path]
			s.uploadsMu.Unlock()
			if !busy {
				if err := os.Remove(path); err == nil {
					temps++
				}
			}
			continue
		}
		if used[name] || !hexDigestRE.MatchString(name) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove blob %s: %w", name, err)
		}
		removed++
	}
	if removed+temps > 0 {
		s.log.Info("swept blobs", "unreferenced", removed, "temporary", temps)
	}
	return nil
}

// freeBytes returns the bytes an unprivileged writer may still use on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// isWriteError reports whether err came from the file, not the reader.
func isWriteError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

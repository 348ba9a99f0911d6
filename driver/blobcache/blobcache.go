// Package blobcache keeps content-addressed blobs (image layers, base
// disks, kernels) on a host's disk, and directories derived from them
// (extracted layers). Every blob is fetched once, verified against its
// digest and size while it is written, and renamed read-only into place:
//
//	Source.Open ─▶ sha256 + size ─▶ <dir>/.tmp-<hex>-<random>
//	                                  │ digest, size and check ok
//	                                  ▼ rename
//	                              <dir>/<hex>   (0444, shared)
//
// A crash or a bad download leaves at most a .tmp- entry, removed by the
// next fetch of that digest or by Clean; a blob is never half there under
// its final name. Concurrent fetches of one digest fetch it once.
package blobcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/keymutex"
)

// Source supplies blobs by digest ("sha256:<hex>"); the cache verifies
// what it returns. driver.BlobSource is one.
type Source interface {
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Cache is a directory of blobs named by the hex of their sha256 digest.
// Its methods are safe for concurrent use by one process.
type Cache struct {
	dir   string
	src   Source
	log   *slog.Logger
	locks keymutex.Map
}

// New returns a cache of the blobs of src in dir, which is created when
// first needed. log, when nil, is slog.Default().
func New(dir string, src Source, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	return &Cache{dir: dir, src: src, log: log}
}

// Dir returns the directory holding the blobs.
func (c *Cache) Dir() string { return c.dir }

var digestPattern = regexp.MustCompile(`^sha256:([a-f0-9]{64})$`)

// Hex returns the hex part of a "sha256:<hex>" digest, or an error for
// anything else (a digest becomes a file name).
func Hex(digest string) (string, error) {
	m := digestPattern.FindStringSubmatch(digest)
	if m == nil {
		return "", fmt.Errorf("blob digest %q: want sha256:<64 lower-case hex digits>", digest)
	}
	return m[1], nil
}

// Path returns where the blob of digest is (or would be) cached.
func (c *Cache) Path(digest string) (string, error) {
	h, err := Hex(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.dir, h), nil
}

// Fetch returns the path of the cached blob b, fetching it unless it is
// cached. check, when not nil, vets the downloaded (read-only) file
// before it is cached; a refused file is removed. Concurrent calls for
// one digest fetch it once.
func (c *Cache) Fetch(ctx context.Context, b api.Blob, check func(path string) error) (string, error) {
	h, err := Hex(b.Digest)
	if err != nil {
		return "", err
	}
	final := filepath.Join(c.dir, h)
	if isFile(final) {
		return final, nil
	}
	unlock := c.locks.Lock(h)
	defer unlock()
	if isFile(final) { // fetched while we waited
		return final, nil
	}
	if err := c.fetch(ctx, b, h, final, check); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	c.log.Info("blob cached", "digest", b.Digest, "size", b.Size, "mediaType", b.MediaType)
	return final, nil
}

// fetch is Fetch with the digest's lock held.
func (c *Cache) fetch(ctx context.Context, b api.Blob, h, final string, check func(string) error) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	if err := removeStale(c.dir, h); err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, tmpPrefix(h))
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := c.download(ctx, b, h, f); err != nil {
		return err
	}
	if err := f.Chmod(0o444); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if check != nil {
		if err := check(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	done = true
	syncDir(c.dir)
	return nil
}

// download writes the blob into f, checking digest and size, and syncs.
func (c *Cache) download(ctx context.Context, b api.Blob, h string, f *os.File) error {
	rc, err := c.src.Open(ctx, b.Digest)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), rc)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h {
		return fmt.Errorf("digest mismatch: content of %s has sha256:%s; refusing it", b.Digest, got)
	}
	if b.Size > 0 && n != b.Size {
		return fmt.Errorf("size mismatch: %s is %d bytes, the image says %d", b.Digest, n, b.Size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// Digests returns the digests of the cached blobs.
func (c *Cache) Digests() ([]string, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	var out []string
	for _, e := range entries {
		if d := "sha256:" + e.Name(); digestPattern.MatchString(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// Remove drops the blob of digest from the cache; a blob that is not
// cached is no error.
func (c *Cache) Remove(digest string) error {
	h, err := Hex(digest)
	if err != nil {
		return err
	}
	unlock := c.locks.Lock(h)
	defer unlock()
	if err := removeEntry(c.dir, h); err != nil {
		return fmt.Errorf("remove blob %s: %w", digest, err)
	}
	return nil
}

// Clean removes what crashed fetches left in the cache. Fetches in
// progress are not disturbed.
func (c *Cache) Clean() error {
	return cleanDir(c.dir, &c.locks)
}

func isFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// syncDir flushes a directory's entries (a rename) to disk; failures are
// not fatal.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// tmpPrefix is the name prefix of the temporary entries of key: a fetch
// or build in progress (or crashed) is ".tmp-<key>-<digits>", a removal
// ".tmp-<key>-prune".
func tmpPrefix(key string) string { return ".tmp-" + key + "-" }

// tmpKey returns the key a temporary entry name belongs to.
func tmpKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, ".tmp-")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	key, suffix := rest[:i], rest[i+1:]
	if suffix != "prune" && !allDigits(suffix) {
		return "", false
	}
	return key, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// removeStale removes the temporary entries of key in dir; the caller
// holds key's lock.
func removeStale(dir, key string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove stale temporary files: %w", err)
	}
	for _, e := range entries {
		if k, ok := tmpKey(e.Name()); ok && k == key {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove stale temporary files: %w", err)
			}
		}
	}
	return nil
}

// removeEntry moves dir/key out of the way before removing it, so a
// crash mid-removal never leaves a partial entry under its final name.
// The caller holds key's lock.
func removeEntry(dir, key string) error {
	doomed := filepath.Join(dir, tmpPrefix(key)+"prune")
	if err := os.RemoveAll(doomed); err != nil {
		return err
	}
	err := os.Rename(filepath.Join(dir, key), doomed)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(doomed)
}

// cleanDir removes every temporary entry of dir, each under its key's
// lock so that work in progress keeps its files.
func cleanDir(dir string, locks *keymutex.Map) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		key, ok := tmpKey(e.Name())
		if !ok {
			continue
		}
		unlock := locks.Lock(key)
		err := os.RemoveAll(filepath.Join(dir, e.Name()))
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("clean %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

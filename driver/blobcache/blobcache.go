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
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"

	"github.com/ouroboros-cloud/ouro/api"
)

// Source supplies blobs by digest ("sha256:<hex>"); the cache verifies
// what it returns. driver.BlobSource is one.
type Source interface {
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Cache is a directory of blobs named by the hex of their sha256 digest.
// Its methods are safe for concurrent use by one process.
type Cache struct {
	store
	src Source
	log *slog.Logger
}

// New returns a cache of the blobs of src in dir, which is created when
// first needed. log, when nil, is slog.Default().
func New(dir string, src Source, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	return &Cache{store: store{dir: dir}, src: src, log: log}
}

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
	path, made, err := c.ensure(h, isFile, func(final string) error { return c.fetch(ctx, b, h, final, check) })
	if err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if made {
		c.log.Info("blob cached", "digest", b.Digest, "size", b.Size, "mediaType", b.MediaType)
	}
	return path, nil
}

// fetch downloads the blob into final, with the digest's lock held.
func (c *Cache) fetch(ctx context.Context, b api.Blob, h, final string, check func(string) error) error {
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
	entries, err := readDir(c.dir)
	var out []string
	for _, e := range entries {
		if d := "sha256:" + e.Name(); digestPattern.MatchString(d) {
			out = append(out, d)
		}
	}
	return out, err
}

// Remove drops the blob of digest from the cache; a blob that is not
// cached is no error.
func (c *Cache) Remove(digest string) error {
	h, err := Hex(digest)
	if err != nil {
		return err
	}
	if err := c.remove(h); err != nil {
		return fmt.Errorf("remove blob %s: %w", digest, err)
	}
	return nil
}

// Clean removes what crashed fetches left in the cache. Fetches in
// progress are not disturbed.
func (c *Cache) Clean() error {
	return c.clean()
}

func isFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

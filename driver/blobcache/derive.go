package blobcache

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
)

// Derived is a cache of directories built from cached blobs, such as
// extracted image layers. A directory is keyed by its blob's digest and a
// variant (say, the uid range its files were shifted to), built once into
// a temporary directory and renamed into place:
//
//	Cache.Fetch ─▶ build(blob, <dir>/.tmp-<key>-<random>/)
//	                              │ build ok, synced
//	                              ▼ rename
//	                        <dir>/<key>/        key: <hex> or <hex>-<variant>
//
// A crash leaves at most a .tmp- directory, removed by the next build of
// that key or by Clean; a directory is never half there under its final
// name.
type Derived struct {
	store
	blobs *Cache
	build BuildFunc
	log   *slog.Logger
}

// BuildFunc makes the directory dir (empty, mode 0700) from the verified
// blob at blobPath, for variant ("" for the plain one). An error leaves
// nothing cached.
type BuildFunc func(ctx context.Context, blob api.Blob, blobPath, variant, dir string) error

// NewDerived returns a cache in dir of directories that build makes from
// the blobs of blobs. log, when nil, is slog.Default().
func NewDerived(blobs *Cache, dir string, build BuildFunc, log *slog.Logger) *Derived {
	if log == nil {
		log = slog.Default()
	}
	return &Derived{store: store{dir: dir}, blobs: blobs, build: build, log: log}
}

var variantPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Key returns the name of the directory derived from the blob of digest
// for variant: the digest's hex, followed by "-<variant>" unless variant
// is "". A variant is lower-case letters and digits, in parts joined by
// '-'.
func Key(digest, variant string) (string, error) {
	h, err := Hex(digest)
	if err != nil {
		return "", err
	}
	if variant == "" {
		return h, nil
	}
	if !variantPattern.MatchString(variant) {
		return "", fmt.Errorf("variant %q: want lower-case letters and digits, in parts joined by '-'", variant)
	}
	return h + "-" + variant, nil
}

// ParseKey splits a key made by Key into a digest and a variant; ok is
// false for any other name.
func ParseKey(key string) (digest, variant string, ok bool) {
	if len(key) < 64 {
		return "", "", false
	}
	digest = "sha256:" + key[:64]
	if !digestPattern.MatchString(digest) {
		return "", "", false
	}
	rest := key[64:]
	if rest == "" {
		return digest, "", true
	}
	variant, found := strings.CutPrefix(rest, "-")
	if !found || !variantPattern.MatchString(variant) {
		return "", "", false
	}
	return digest, variant, true
}

// Ensure returns the directory derived from blob b for variant, fetching
// the blob and building the directory unless that was done before.
// Concurrent calls for one key build it once.
func (d *Derived) Ensure(ctx context.Context, b api.Blob, variant string) (string, error) {
	key, err := Key(b.Digest, variant)
	if err != nil {
		return "", err
	}
	path, made, err := d.ensure(key, isDir, func(final string) error {
		blobPath, err := d.blobs.Fetch(ctx, b, nil)
		if err != nil {
			return err // it names the blob
		}
		if err := d.make(ctx, b, blobPath, variant, key, final); err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if made {
		d.log.Info("blob extracted", "digest", b.Digest, "variant", variant, "size", b.Size)
	}
	return path, nil
}

// make builds the directory of key into final, with the key's lock held.
func (d *Derived) make(ctx context.Context, b api.Blob, blobPath, variant, key, final string) error {
	tmp, err := os.MkdirTemp(d.dir, tmpPrefix(key))
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := d.build(ctx, b, blobPath, variant, tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp made it 0700
		return err
	}
	if err := syncFS(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	done = true
	return nil
}

// Keys returns the keys of the derived directories.
func (d *Derived) Keys() ([]string, error) {
	entries, err := readDir(d.dir)
	var out []string
	for _, e := range entries {
		if _, _, ok := ParseKey(e.Name()); ok && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// Remove drops the directory of key; one that does not exist is no
// error. The blob stays cached (see Cache.Remove).
func (d *Derived) Remove(key string) error {
	if _, _, ok := ParseKey(key); !ok {
		return fmt.Errorf("remove %q: not a derived directory's key", key)
	}
	if err := d.remove(key); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	return nil
}

// Clean removes what crashed builds and removals left. Builds in
// progress are not disturbed.
func (d *Derived) Clean() error {
	return d.clean()
}

func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// syncFS flushes the filesystem holding dir, so a renamed directory is
// complete on disk.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

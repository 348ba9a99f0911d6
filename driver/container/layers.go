package container

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
)

// The layer cache: every image layer is fetched once, verified against
// its digest while streaming, and extracted into <Dir>/layers/<hex>/
// (<Dir>/layers-<base>/<hex>/ with owners shifted for containers in a
// user namespace, see idmap.go), which all instances share as read-only
// overlay lower directories.
//
//	Blobs.Open ─▶ sha256 tee ─▶ gunzip ─▶ tar ─▶ <Dir>/layers/.tmp-<hex>-*/
//	                                             │ digest ok: rename
//	                                             ▼
//	                                       <Dir>/layers/<hex>/
//
// A crash leaves at most a .tmp- directory, removed by the next
// extraction of that digest; a layer is never half there under its final
// name.

var digestPattern = regexp.MustCompile(`^sha256:([a-f0-9]{64})$`)

// digestHex returns the hex part of a "sha256:<hex>" digest.
func digestHex(digest string) (string, error) {
	m := digestPattern.FindStringSubmatch(digest)
	if m == nil {
		return "", fmt.Errorf("layer digest %q: want sha256:<64 lower-case hex digits>", digest)
	}
	return m[1], nil
}

// layersDir is the layer cache of the id mapping m: owners are shifted
// into m's range, so a container of that mapping sees them unshifted.
func (d *Driver) layersDir(m idMap) string { return filepath.Join(d.cfg.Dir, m.layersDirName()) }

// ensureLayers makes sure every layer is extracted for the id mapping m
// and returns their directories in the same order (lowest first).
func (d *Driver) ensureLayers(ctx context.Context, blobs []api.Blob, m idMap) ([]string, error) {
	dirs := make([]string, 0, len(blobs))
	for _, b := range blobs {
		dir, err := d.ensureLayer(ctx, b, m)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// ensureLayer extracts one layer unless it already is. Concurrent calls
// for one digest extract it once.
func (d *Driver) ensureLayer(ctx context.Context, b api.Blob, m idMap) (string, error) {
	hexDigest, err := digestHex(b.Digest)
	if err != nil {
		return "", err
	}
	cache := d.layersDir(m)
	final := filepath.Join(cache, hexDigest)
	if isDir(final) {
		return final, nil
	}
	unlock := d.layerLocks.Lock(final)
	defer unlock()
	if isDir(final) { // extracted while we waited
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	// Leftovers of an extraction that crashed.
	stale, _ := filepath.Glob(filepath.Join(cache, ".tmp-"+hexDigest+"-*"))
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return "", fmt.Errorf("layer %s: remove stale extraction: %w", b.Digest, err)
		}
	}
	tmp, err := os.MkdirTemp(cache, ".tmp-"+hexDigest+"-")
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := d.fetchAndExtract(ctx, b, hexDigest, tmp, m); err != nil {
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp made it 0700
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	if err := syncFS(tmp); err != nil {
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("layer %s: %w", b.Digest, err)
	}
	done = true
	d.log.Info("layer extracted", "digest", b.Digest, "size", b.Size, "cache", m.layersDirName())
	return final, nil
}

// fetchAndExtract streams the blob into dir, checking its digest and
// size, with owners shifted by m.
func (d *Driver) fetchAndExtract(ctx context.Context, b api.Blob, hexDigest, dir string, m idMap) error {
	rc, err := d.cfg.Blobs.Open(ctx, b.Digest)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	counter := &countingReader{r: io.TeeReader(rc, h)}
	br := bufio.NewReaderSize(counter, 64*1024)

	tarStream, closeDecomp, err := decompress(br, b.MediaType)
	if err != nil {
		return err
	}
	extractErr := extractTar(ctx, tarStream, dir, m, d.log)
	// Read to the end so the digest covers every byte, even past the
	// tar's end-of-archive marker.
	_, decompErr := io.Copy(io.Discard, tarStream)
	closeDecomp()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	// A wrong digest explains any extraction error, so check it first.
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return fmt.Errorf("digest mismatch: content of %s has sha256:%s; refusing the layer", b.Digest, got)
	}
	if extractErr != nil {
		return fmt.Errorf("extract: %w", extractErr)
	}
	if decompErr != nil {
		return fmt.Errorf("decompress: %w", decompErr)
	}
	if b.Size > 0 && counter.n != b.Size {
		return fmt.Errorf("size mismatch: %s is %d bytes, the image says %d", b.Digest, counter.n, b.Size)
	}
	return nil
}

// decompress returns the tar stream inside br: gunzipped when the media
// type says gzip or the data starts with the gzip magic, else as is.
func decompress(br *bufio.Reader, mediaType string) (io.Reader, func(), error) {
	if strings.Contains(mediaType, "zstd") {
		return nil, nil, fmt.Errorf("layer media type %q is not supported (use gzip or plain tar)", mediaType)
	}
	magic, _ := br.Peek(2)
	isGzip := strings.HasSuffix(mediaType, "gzip") || (len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
	if !isGzip {
		return br, func() {}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, nil, fmt.Errorf("gunzip: %w", err)
	}
	return zr, func() { zr.Close() }, nil
}

// PruneLayers removes cached layers whose digest ("sha256:<hex>") is not
// in keep, from the cache of every id mapping. Layers used by an instance
// on this host are always kept, as are extractions in progress.
func (d *Driver) PruneLayers(ctx context.Context, keep map[string]bool) error {
	caches, err := filepath.Glob(filepath.Join(d.cfg.Dir, "layers-*"))
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	caches = append(caches, d.layersDir(idMap{}))
	inUse, err := d.layersInUse(ctx)
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	var errs []error
	for _, cache := range caches {
		if err := d.pruneCache(cache, keep, inUse); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pruneCache removes the layers of one cache directory that are neither
// kept nor in use.
func (d *Driver) pruneCache(cache string, keep, inUse map[string]bool) error {
	entries, err := os.ReadDir(cache)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	var errs []error
	for _, e := range entries {
		hexDigest := e.Name()
		digest := "sha256:" + hexDigest
		if !digestPattern.MatchString(digest) || keep[digest] || keep[hexDigest] || inUse[digest] {
			continue
		}
		final := filepath.Join(cache, hexDigest)
		unlock := d.layerLocks.Lock(final)
		// Move it out of the way first, so a crash mid-removal never
		// leaves a partial layer under its final name.
		doomed := filepath.Join(cache, ".tmp-"+hexDigest+"-prune")
		err := os.Rename(final, doomed)
		if err == nil {
			err = os.RemoveAll(doomed)
		}
		unlock()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("prune layer %s: %w", digest, err))
			continue
		}
		d.log.Info("layer pruned", "digest", digest, "cache", filepath.Base(cache))
	}
	return errors.Join(errs...)
}

// layersInUse returns the digests of the layers of every instance on
// disk.
func (d *Driver) layersInUse(ctx context.Context) (map[string]bool, error) {
	ids, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, id := range ids {
		spec, err := readSpec(d.paths(id).spec)
		if errors.Is(err, os.ErrNotExist) {
			continue // Create did not finish; it fetches again
		}
		if err != nil {
			return nil, err
		}
		for _, l := range spec.Image.Layers {
			used[l.Digest] = true
		}
	}
	return used, nil
}

// lowerDirs orders layer directories for overlayfs (top-most first) and
// drops repeats: a layer that appears again higher up already covers its
// lower copy.
func lowerDirs(layers []string) []string {
	seen := map[string]bool{}
	var out []string
	for i := len(layers) - 1; i >= 0; i-- {
		if !seen[layers[i]] {
			seen[layers[i]] = true
			out = append(out, layers[i])
		}
	}
	return out
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// syncFS flushes the filesystem holding dir, so a renamed layer is
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

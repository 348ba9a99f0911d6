package container

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver/blobcache"
)

// The layer cache: every image layer is fetched once into the blob cache
// (<Dir>/blobs/<hex>, verified against its digest and size), then
// extracted once into <Dir>/layers/<key>/, which all instances share as
// read-only overlay lower directories. See package blobcache for how
// both survive a crash.
//
//	Blobs.Open ─▶ blobcache.Cache ─▶ <Dir>/blobs/<hex>
//	                                   │ gunzip ─▶ tar
//	                                   ▼ blobcache.Derived
//	                             <Dir>/layers/<hex>[-<variant>]/
//
// The variant is the user namespace mapping the layer's owners were
// shifted to (idMap.variant, "u<base>-<size>"), so that a container with
// that mapping sees them as the image has them; "" is the unshifted
// extraction of containers without a user namespace.

func (d *Driver) layersDir() string { return filepath.Join(d.cfg.Dir, "layers") }
func (d *Driver) blobsDir() string  { return filepath.Join(d.cfg.Dir, "blobs") }

// ensureLayers makes sure every layer is extracted for the id mapping m
// and returns their directories in the same order (lowest first).
func (d *Driver) ensureLayers(ctx context.Context, blobs []api.Blob, m idMap) ([]string, error) {
	dirs := make([]string, 0, len(blobs))
	for i, b := range blobs {
		dir, err := d.layers.Ensure(ctx, b, m.variant())
		if err != nil {
			return nil, fmt.Errorf("layer %d of %d: %w", i+1, len(blobs), err)
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// extractLayer is the blobcache.BuildFunc of layers: it unpacks the
// verified layer blob at blobPath into dir, with owners shifted by the
// id mapping that variant names.
func (d *Driver) extractLayer(ctx context.Context, b api.Blob, blobPath, variant, dir string) error {
	ids, err := parseVariant(variant)
	if err != nil {
		return err
	}
	f, err := os.Open(blobPath)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the host path says nothing about the image
		}
		return fmt.Errorf("open the cached blob: %w", err)
	}
	defer f.Close()
	tarStream, closeDecomp, err := decompress(bufio.NewReaderSize(f, 64*1024), b.MediaType)
	if err != nil {
		return err
	}
	defer closeDecomp()
	if err := extractTar(ctx, tarStream, dir, ids, d.log); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	// Read to the end so a corrupt compressed stream is noticed.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		return fmt.Errorf("decompress: %w", err)
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

// PruneLayers removes cached layers (blobs and their extractions) whose
// digest ("sha256:<hex>") is not in keep, and what crashed fetches and
// extractions left. Layers used by an instance on this host are always
// kept, as are fetches and extractions in progress.
func (d *Driver) PruneLayers(ctx context.Context, keep map[string]bool) error {
	inUse, err := d.layersInUse(ctx)
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	if err := errors.Join(d.layers.Clean(), d.blobs.Clean()); err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	doomed := func(digest string) bool {
		return !keep[digest] && !keep[strings.TrimPrefix(digest, "sha256:")] && !inUse[digest]
	}
	var errs []error
	keys, err := d.layers.Keys()
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	for _, key := range keys {
		digest, variant, _ := blobcache.ParseKey(key)
		if !doomed(digest) {
			continue
		}
		if err := d.layers.Remove(key); err != nil {
			errs = append(errs, fmt.Errorf("prune layer %s: %w", digest, err))
			continue
		}
		d.log.Info("layer pruned", "digest", digest, "variant", variant)
	}
	digests, err := d.blobs.Digests()
	if err != nil {
		return fmt.Errorf("prune layers: %w", err)
	}
	for _, digest := range digests {
		if doomed(digest) {
			if err := d.blobs.Remove(digest); err != nil {
				errs = append(errs, fmt.Errorf("prune layer %s: %w", digest, err))
			}
		}
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
		spec, err := d.instances.ReadSpec(id)
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

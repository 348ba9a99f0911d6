package imageimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// UploadOptions tune Upload.
type UploadOptions struct {
	// Public images can be used by every project.
	Public      bool
	Description string
	// Progress, if set, is called as blob bytes are sent, with the bytes
	// done so far (blobs the server already had count as done) and the
	// total of all blobs. Calls never overlap but may come from another
	// goroutine.
	Progress func(done, total int64)
}

// putAttempts bounds how often one blob upload is tried.
const putAttempts = 3

// Upload sends the image's blobs — layers, or disk, kernel and initrd — to
// the server (skipping blobs the caller can already read there; content
// only other projects' images hold is sent again, as the server does not
// tell) and creates the Image object
// project/name. The create carries an idempotency key derived from
// project, name and content, so a retried import never makes two images.
func Upload(ctx context.Context, c *client.Client, project, name string, img *Image, opts UploadOptions) (*api.Image, error) {
	if err := api.ValidateName("metadata.project", project); err != nil {
		return nil, err
	}
	if err := api.ValidateName("metadata.name", name); err != nil {
		return nil, err
	}
	if err := UploadBlobs(ctx, c, img, opts.Progress); err != nil {
		return nil, err
	}
	obj := &api.Image{
		Kind:     api.ImageKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: project},
		Spec:     img.Spec(opts),
	}
	key := IdempotencyKey(project, name, img)
	existed, err := c.Create(ctx, obj, client.CreateOptions{IdempotencyKey: key})
	if api.IsNotFound(err) {
		// The key made an image that was deleted since: this import is a
		// new request, not a retry of that one.
		key += "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		existed, err = c.Create(ctx, obj, client.CreateOptions{IdempotencyKey: key})
	}
	if err != nil {
		return nil, fmt.Errorf("create image %s/%s: %w", project, name, err)
	}
	if existed {
		slog.Info("image was already created by an earlier attempt", "project", project, "image", name)
	}
	return obj, nil
}

// UploadBlobs sends the image's blobs — layers, or disk, kernel and
// initrd — to the server, skipping blobs the caller can already read
// there. progress, if set, is called as for UploadOptions.Progress.
func UploadBlobs(ctx context.Context, c *client.Client, img *Image, progressFn func(done, total int64)) error {
	blobs := img.blobs()
	if len(blobs) == 0 {
		return errors.New("image has no layers, disk or kernel")
	}
	var total, done int64
	for _, l := range blobs {
		total += l.Size
	}
	// The HTTP transport reads the layer (and so reports progress) on its
	// own goroutine; the lock keeps calls from overlapping.
	var mu sync.Mutex
	progress := func(n int64) {
		if progressFn != nil {
			mu.Lock()
			defer mu.Unlock()
			progressFn(n, total)
		}
	}
	progress(0)
	for _, l := range blobs {
		has, err := c.HasBlob(ctx, l.Digest)
		if err != nil {
			return fmt.Errorf("ask the server for blob %s: %w", l.Digest, err)
		}
		if !has {
			if err := putLayer(ctx, c, l, done, progress); err != nil {
				return err
			}
		}
		done += l.Size
		progress(done)
	}
	return nil
}

// Spec returns the spec of an Image object made of img, with the public
// flag and description of opts: what Upload creates once the blobs are
// on the server.
func (img *Image) Spec(opts UploadOptions) api.ImageSpec {
	spec := api.ImageSpec{
		Public:       opts.Public,
		Format:       img.format(),
		Architecture: img.Architecture,
		Cmdline:      img.Cmdline,
		Source:       img.Source,
		Description:  opts.Description,
	}
	if spec.Format == api.FormatOCI {
		spec.Config = img.Config
	}
	for _, l := range img.Layers {
		spec.Layers = append(spec.Layers, l.Blob)
	}
	for _, b := range []struct {
		from *Blob
		to   **api.Blob
	}{{img.Disk, &spec.Disk}, {img.Kernel, &spec.Kernel}, {img.Initrd, &spec.Initrd}} {
		if b.from != nil {
			blob := b.from.Blob
			*b.to = &blob
		}
	}
	return spec
}

// IdempotencyKey is the key Upload creates an image with: the same for the
// same project, name and content (blobs, and the format and command line
// of a virtual machine image).
func IdempotencyKey(project, name string, img *Image) string {
	h := sha256.New()
	parts := []string{project, name}
	for _, l := range img.blobs() {
		parts = append(parts, l.Digest)
	}
	if f := img.format(); f != api.FormatOCI {
		parts = append(parts, f, img.Cmdline)
	}
	for _, s := range parts {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return "image-import-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// putLayer uploads one layer file, retrying transport failures and server
// errors. base is the progress before this layer.
func putLayer(ctx context.Context, c *client.Client, l Blob, base int64, progress func(int64)) error {
	var err error
	for attempt := 1; attempt <= putAttempts; attempt++ {
		if attempt > 1 {
			slog.Warn("blob upload failed, retrying", "digest", l.Digest, "attempt", attempt, "err", err)
			t := time.NewTimer(time.Duration(attempt-1) * 500 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		err = putOnce(ctx, c, l, base, progress)
		if err == nil || ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("upload %s %s: %w", blobNoun(l.MediaType), l.Digest, err)
	}
	return nil
}

// blobNoun names what a blob is for in messages.
func blobNoun(mediaType string) string {
	switch mediaType {
	case api.MediaTypeDiskQCOW2, api.MediaTypeDiskRaw:
		return "disk"
	case api.MediaTypeKernel:
		return "kernel"
	case api.MediaTypeInitrd:
		return "initrd"
	}
	return "layer"
}

func putOnce(ctx context.Context, c *client.Client, l Blob, base int64, progress func(int64)) error {
	f, err := os.Open(l.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != l.Size {
		return fmt.Errorf("%s has %d bytes, but %d were verified: %w", l.Path, fi.Size(), l.Size, errLayerChanged)
	}
	pr := &progressReader{r: f, done: base, fn: progress}
	return c.PutBlob(ctx, l.Digest, l.Size, pr)
}

// errLayerChanged means a blob's file changed after it was verified.
var errLayerChanged = errors.New("the file changed since it was verified; import the image again")

// retryable reports whether an upload error may pass on a second try:
// transport errors and server-side (5xx) failures, not refusals.
func retryable(err error) bool {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status >= http.StatusInternalServerError
	}
	var pe *os.PathError
	return !errors.As(err, &pe) && !errors.Is(err, errLayerChanged)
}

// progressReader reports bytes read.
type progressReader struct {
	r    io.Reader
	done int64
	fn   func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.fn(p.done)
	}
	return n, err
}

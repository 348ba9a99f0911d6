package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/store"
)

// DefaultMaxBlobBytes bounds one uploaded blob unless Config.MaxBlobBytes
// says otherwise: room for a whole raw disk image.
const DefaultMaxBlobBytes = 64 << 30

// UnreferencedBlobAge is how old a blob no image refers to must be before
// SweepBlobs removes it, so uploads have time to become images.
const UnreferencedBlobAge = blobstore.UnreferencedBlobAge

// blobPath returns the file of the blob with the given hex digest, where
// image validation checks and freshens the blobs an image refers to
// (blobstore's Stat and Touch do the same without the path).
func (s *Server) blobPath(hexDigest string) string { return s.blobs.Path(hexDigest) }

// blobDigest returns the hex part of the {digest} path value.
func blobDigest(r *http.Request) (string, error) {
	d := r.PathValue("digest")
	m := digestRE.FindStringSubmatch(d)
	if m == nil {
		return "", api.Invalid("digest", "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(d, 80))
	}
	return m[1], nil
}

// blobHandlers serve the blob routes over the blob store.
type blobHandlers struct {
	blobs *blobstore.Store
	// maxBytes bounds one uploaded blob (Config.MaxBlobBytes).
	maxBytes int64
}

// get serves a blob's content. Who may read which blob is decided here,
// before the store is asked.
func (h *blobHandlers) get(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if err := authorize(id, auth.Attributes{Verb: auth.VerbGet, Resource: auth.ResourceBlobs}, "Blob", ""); err != nil {
		return err
	}
	hx, err := blobDigest(r)
	if err != nil {
		return err
	}
	f, info, err := h.blobs.Open(hx)
	if errors.Is(err, fs.ErrNotExist) {
		return api.NotFound("Blob", "sha256:"+hx)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+hx+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", info.ModTime(), f)
	return nil
}

// put stores the body as the blob under its digest, up to the server's
// size limit.
func (h *blobHandlers) put(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if err := authorize(id, auth.Attributes{Verb: auth.VerbCreate, Resource: auth.ResourceBlobs}, "Blob", ""); err != nil {
		return err
	}
	hx, err := blobDigest(r)
	if err != nil {
		return err
	}
	limit := h.maxBytes
	if r.ContentLength > limit {
		return blobTooLarge(limit)
	}
	n, err := h.blobs.Put(hx, http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	var (
		mbe     *http.MaxBytesError
		noSpace *blobstore.NoSpaceError
		readErr *blobstore.ReadError
		digest  *blobstore.DigestError
	)
	switch {
	case err == nil:
	case errors.As(err, &mbe):
		return blobTooLarge(limit)
	case errors.As(err, &noSpace):
		return &api.Error{Status: http.StatusInsufficientStorage, Code: api.CodeUnavailable,
			Message: noSpace.Error(),
			Hint:    "free space in the server's data directory or delete unused images"}
	case errors.As(err, &readErr):
		return api.Invalid("body", "upload the whole blob again", "%s", readErr.Error())
	case errors.As(err, &digest):
		return api.Invalid("digest", "upload the blob under its own digest", "%s", digest.Error())
	default:
		return err
	}
	writeJSON(w, http.StatusCreated, api.Blob{Digest: "sha256:" + hx, Size: n})
	return nil
}

// blobTooLarge refuses a blob over the server's limit.
func blobTooLarge(limit int64) *api.Error {
	return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: fmt.Sprintf("the blob is larger than this server's limit of %d bytes", limit),
		Hint:    "a cluster admin can raise it with ouro server --max-blob-gib"}
}

// SweepBlobs removes temporary files that no upload in progress owns (left
// by crashes) and blobs that no image refers to and that are older than
// UnreferencedBlobAge. Call it periodically; it is safe to run at any time.
func (s *Server) SweepBlobs(ctx context.Context) error {
	return s.blobs.Sweep(ctx, func(ctx context.Context) (map[string]bool, error) {
		return imageBlobs(ctx, s.store)
	})
}

// imageBlobs returns the hex digests of the blobs that images refer to.
func imageBlobs(ctx context.Context, st store.Interface) (map[string]bool, error) {
	imgs, _, err := st.List(ctx, api.ImageKind, "", store.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	used := map[string]bool{}
	for _, o := range imgs {
		for _, b := range o.(*api.Image).Spec.Blobs() {
			used[strings.TrimPrefix(b.Digest, "sha256:")] = true
		}
	}
	return used, nil
}

package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/blobaccess"
	"github.com/ouroboros-cloud/ouro/blobrepl"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/store"
)

// DefaultMaxBlobBytes bounds one uploaded blob unless Config.MaxBlobBytes
// says otherwise: room for a whole raw disk image.
const DefaultMaxBlobBytes = 64 << 30

// UnreferencedBlobAge is how old a blob no image refers to must be before
// SweepBlobs removes it, so uploads have time to become images.
const UnreferencedBlobAge = blobstore.UnreferencedBlobAge

// blobChecker answers image admission's questions about blobs from the
// blob store (does a blob exist, of what size) and the blob access index
// (may this identity name it).
type blobChecker struct {
	*blobstore.Store
	*blobaccess.Index
}

var _ admission.Blobs = blobChecker{}

// blobDigest returns the hex part of the {digest} path value.
func blobDigest(r *http.Request) (string, error) {
	return admission.BlobDigest("digest", r.PathValue("digest"))
}

// blobHandlers serve the blob routes over the blob store.
type blobHandlers struct {
	blobs *blobstore.Store
	// access decides who may read a blob and records who uploaded one.
	access *blobaccess.Index
	// maxBytes bounds one uploaded blob (Config.MaxBlobBytes).
	maxBytes int64
	// repl copies blobs to and from the other servers; nil without.
	repl *blobrepl.Replicator
}

// get serves a blob's content (GET, and HEAD without the body). Who may
// read which blob is decided here, before the store is asked: a caller
// who may read no image referring to the blob gets the same 404 as for a
// missing blob, so HEAD does not tell whether others uploaded it.
func (h *blobHandlers) get(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if err := authorize(id, auth.Attributes{Verb: auth.VerbGet, Resource: auth.ResourceBlobs}, "Blob", ""); err != nil {
		return err
	}
	hx, err := blobDigest(r)
	if err != nil {
		return err
	}
	ok, err := h.access.CanRead(r.Context(), id, hx)
	if err != nil {
		return unavailable(fmt.Errorf("decide access to blob: %w", err))
	}
	if !ok {
		return blobNotFound(hx)
	}
	f, info, err := h.blobs.Open(hx)
	if errors.Is(err, fs.ErrNotExist) && h.repl != nil {
		// Another server received it and this one has not caught up
		// (or lost its copy): fetch it, then serve it.
		if ferr := h.repl.Fetch(r.Context(), hx); ferr == nil {
			f, info, err = h.blobs.Open(hx)
		} else if !errors.Is(ferr, fs.ErrNotExist) {
			return unavailable(ferr)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return blobNotFound(hx)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+hx+`"`)
	// Private: the answer depends on the caller, so shared caches must
	// not keep it for others (as "public" would let them, even though the
	// request carried a token).
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", info.ModTime(), f)
	return nil
}

// blobNotFound answers a blob that is missing or that the caller may not
// read, alike.
func blobNotFound(hexDigest string) error { return api.NotFound("Blob", "sha256:"+hexDigest) }

// put stores the body as the blob under its digest, up to the server's
// size limit, and, when other servers are ready, answers only once one of
// them holds it too. Content the server already holds is taken again and
// answered the same (201), so an upload does not tell whether others
// uploaded it; the upload lets its user make images of the blob.
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
	if h.repl != nil {
		if err := h.repl.Replicate(r.Context(), id.User, hx); err != nil {
			return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
				Message: fmt.Sprintf("the blob is stored but could not be copied to another server: %v", err),
				Hint:    "upload it again"}
		}
	}
	h.access.RecordUpload(id.User, hx)
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

package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Blob store limits.
const (
	// DefaultMaxBlobBytes bounds one uploaded blob unless
	// Config.MaxBlobBytes says otherwise: room for a whole raw disk image.
	DefaultMaxBlobBytes = 64 << 30
	// UnreferencedBlobAge is how old a blob no image refers to must be
	// before SweepBlobs removes it, so uploads have time to become images.
	UnreferencedBlobAge = time.Hour
	tempPrefix          = ".tmp-"
)

func (s *Server) blobPath(hexDigest string) string { return filepath.Join(s.blobDir, hexDigest) }

// blobDigest returns the hex part of the {digest} path value.
func blobDigest(r *http.Request) (string, error) {
	d := r.PathValue("digest")
	m := digestRE.FindStringSubmatch(d)
	if m == nil {
		return "", api.Invalid("digest", "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(d, 80))
	}
	return m[1], nil
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if err := authorize(id, auth.Attributes{Verb: auth.VerbGet, Resource: auth.ResourceBlobs}, "Blob", ""); err != nil {
		return err
	}
	hx, err := blobDigest(r)
	if err != nil {
		return err
	}
	f, err := os.Open(s.blobPath(hx))
	if errors.Is(err, fs.ErrNotExist) {
		return api.NotFound("Blob", "sha256:"+hx)
	}
	if err != nil {
		return fmt.Errorf("open blob: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat blob: %w", err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+hx+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}

// putBlob stores a blob under its digest. The body goes to a temporary file
// that is hashed while written, synced and renamed only if the digest
// matches: a crash never leaves a partial blob under a digest name.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if err := authorize(id, auth.Attributes{Verb: auth.VerbCreate, Resource: auth.ResourceBlobs}, "Blob", ""); err != nil {
		return err
	}
	hx, err := blobDigest(r)
	if err != nil {
		return err
	}
	limit := s.cfg.MaxBlobBytes
	if r.ContentLength > limit {
		return blobTooLarge(limit)
	}
	if err := os.MkdirAll(s.blobDir, 0o755); err != nil {
		return fmt.Errorf("create blob directory: %w", err)
	}
	if free, err := freeBytes(s.blobDir); err == nil && r.ContentLength > free {
		return &api.Error{Status: http.StatusInsufficientStorage, Code: api.CodeUnavailable,
			Message: fmt.Sprintf("the blob store has %d bytes free; the blob has %d", free, r.ContentLength),
			Hint:    "free space in the server's data directory or delete unused images"}
	}
	f, err := os.CreateTemp(s.blobDir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temporary blob: %w", err)
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
	n, err := io.Copy(io.MultiWriter(f, h), http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return blobTooLarge(limit)
		}
		if errors.Is(err, fs.ErrClosed) || isWriteError(err) {
			return fmt.Errorf("write blob: %w", err)
		}
		return api.Invalid("body", "upload the whole blob again", "reading the upload failed after %d bytes: %v", n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hx {
		return api.Invalid("digest", "upload the blob under its own digest", "the body hashes to sha256:%s, not sha256:%s", got, hx)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod blob: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close blob: %w", err)
	}
	if err := os.Rename(tmp, s.blobPath(hx)); err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	if err := syncDir(s.blobDir); err != nil {
		return fmt.Errorf("sync blob directory: %w", err)
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

// freeBytes returns the bytes an unprivileged writer may still use on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// isWriteError reports whether err came from the file, not the client.
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

// SweepBlobs removes temporary files that no upload in progress owns (left
// by crashes) and blobs that no image refers to and that are older than
// UnreferencedBlobAge. Call it periodically; it is safe to run at any time.
func (s *Server) SweepBlobs(ctx context.Context) error {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	entries, err := os.ReadDir(s.blobDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read blob directory: %w", err)
	}
	imgs, _, err := s.store.List(ctx, api.ImageKind, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	used := map[string]bool{}
	for _, o := range imgs {
		for _, b := range o.(*api.Image).Spec.Blobs() {
			used[strings.TrimPrefix(b.Digest, "sha256:")] = true
		}
	}
	cutoff := time.Now().Add(-UnreferencedBlobAge)
	var removed, temps int
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.blobDir, name)
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
		if used[name] || !digestRE.MatchString("sha256:"+name) {
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

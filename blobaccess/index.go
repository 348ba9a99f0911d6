// Package blobaccess decides who may read which blob, as registries scope
// blobs by repository: a blob is readable by a caller who may read an
// image that refers to it. Users may read the blobs of the images of the
// projects they have a role in and of public images; hosts the blobs of
// the images of the instances placed on them; cluster admins every blob.
// Who may not read a blob must not learn that it exists either, so the
// API server answers such a request exactly as for a missing blob.
//
// The Index answers "which images refer to this digest" from memory: it
// mirrors the images (and, for hosts, the instances) of the store, and
// brings the mirror to the store's current state before each decision,
// reading only what changed. An image created before a request arrived is
// therefore always seen by it.
//
// Uploading proves that a caller holds a blob's content, so a user who
// uploaded a blob may make an image of it even when no image they may
// read refers to it yet (another project's, say); the Index remembers
// such uploads for a while (Config.UploadTTL).
package blobaccess

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// DefaultUploadTTL is how long an upload lets its user refer to the blob
// unless Config.UploadTTL says otherwise: as long as the blob sweep leaves
// an unreferenced blob alone.
const DefaultUploadTTL = time.Hour

// Config configures an Index.
type Config struct {
	// Store holds the images and instances.
	Store store.Interface
	// UploadTTL is how long RecordUpload lets a user refer to a blob;
	// default DefaultUploadTTL.
	UploadTTL time.Duration
	// Now returns the time; default time.Now (tests).
	Now func() time.Time
}

// Index answers which blobs a caller may read or refer to. Its methods are
// safe for concurrent use.
type Index struct {
	cfg Config

	// seq orders requests and refreshes: a request is served by a
	// refresh that started after it arrived, so it sees every write that
	// finished before it.
	seq atomic.Int64

	mu sync.Mutex
	// images and instances mirror the store; imagesFrom and
	// instancesFrom are the seq at which their last refresh started.
	images                    *mirror[imageEntry]
	instances                 *mirror[placement]
	imagesFrom, instancesFrom int64
	// byDigest maps a blob's hex digest to the keys of the images that
	// refer to it.
	byDigest map[string]map[string]struct{}
	// onHost counts, per host, the instances placed there that use each
	// image (by image key).
	onHost map[string]map[string]int

	uploadsMu sync.Mutex
	// uploads maps a hex digest to the users who uploaded it and when.
	uploads    map[string]map[string]time.Time
	lastPruned time.Time
}

// imageEntry is what the index keeps of an image.
type imageEntry struct {
	public bool
	// digests are the hex digests of the image's blobs.
	digests []string
}

// placement is what the index keeps of an instance: where it runs and its
// image ("project/name", the key of the image).
type placement struct {
	host, image string
}

// New returns an Index over cfg.Store. It reads nothing until asked.
func New(cfg Config) *Index {
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	x := &Index{cfg: cfg, byDigest: map[string]map[string]struct{}{}, onHost: map[string]map[string]int{},
		uploads: map[string]map[string]time.Time{}}
	x.images = newMirror(cfg.Store, api.ImageKind, imageOf, x.addImage, x.removeImage)
	x.instances = newMirror(cfg.Store, api.InstanceKind, instanceOf, x.addInstance, x.removeInstance)
	return x
}

func imageOf(o api.Object) imageEntry {
	img := o.(*api.Image)
	e := imageEntry{public: img.Spec.Public}
	for _, b := range img.Spec.Blobs() {
		e.digests = append(e.digests, strings.TrimPrefix(b.Digest, "sha256:"))
	}
	return e
}

func instanceOf(o api.Object) placement {
	in := o.(*api.Instance)
	return placement{host: in.Status.Host, image: in.Spec.Image}
}

func (x *Index) addImage(key string, e imageEntry) {
	for _, d := range e.digests {
		keys := x.byDigest[d]
		if keys == nil {
			keys = map[string]struct{}{}
			x.byDigest[d] = keys
		}
		keys[key] = struct{}{}
	}
}

func (x *Index) removeImage(key string, e imageEntry) {
	for _, d := range e.digests {
		delete(x.byDigest[d], key)
		if len(x.byDigest[d]) == 0 {
			delete(x.byDigest, d)
		}
	}
}

func (x *Index) addInstance(_ string, e placement) {
	if e.host == "" || e.image == "" {
		return
	}
	imgs := x.onHost[e.host]
	if imgs == nil {
		imgs = map[string]int{}
		x.onHost[e.host] = imgs
	}
	imgs[e.image]++
}

func (x *Index) removeInstance(_ string, e placement) {
	if e.host == "" || e.image == "" {
		return
	}
	imgs := x.onHost[e.host]
	if imgs[e.image]--; imgs[e.image] <= 0 {
		delete(imgs, e.image)
	}
	if len(imgs) == 0 {
		delete(x.onHost, e.host)
	}
}

// refresher is a mirror of any kind.
type refresher interface {
	refresh(ctx context.Context) error
}

// fresh brings m up to the store's current state unless a refresh that
// started after ticket already did; from is m's last refresh start.
// The caller holds x.mu.
func (x *Index) fresh(ctx context.Context, m refresher, from *int64, ticket int64) error {
	if *from > ticket {
		return nil
	}
	start := x.seq.Add(1)
	if err := m.refresh(ctx); err != nil {
		return err
	}
	*from = start
	return nil
}

// CanRead reports whether id may read the blob with the given hex digest:
// cluster admins any blob; users the blobs of the images of projects they
// have a role in and of public images; hosts the blobs of the images of
// the instances placed on them. A blob no image refers to is readable by
// cluster admins only.
func (x *Index) CanRead(ctx context.Context, id *auth.Identity, hexDigest string) (bool, error) {
	switch {
	case id == nil:
		return false, nil
	case id.Host == "" && id.ClusterAdmin:
		return true, nil
	}
	ticket := x.seq.Add(1)
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.fresh(ctx, x.images, &x.imagesFrom, ticket); err != nil {
		return false, err
	}
	keys := x.byDigest[hexDigest]
	if len(keys) == 0 {
		return false, nil
	}
	if id.Host != "" {
		if err := x.fresh(ctx, x.instances, &x.instancesFrom, ticket); err != nil {
			return false, err
		}
		used := x.onHost[id.Host]
		for k := range keys {
			if used[k] > 0 {
				return true, nil
			}
		}
		return false, nil
	}
	for k := range keys {
		img, _ := x.images.get(k)
		project, _, _ := strings.Cut(k, "/")
		if img.public || auth.AtLeast(id.Roles[project], api.RoleViewer) {
			return true, nil
		}
	}
	return false, nil
}

// Referenced returns the hex digests of the blobs that images refer to,
// as the store holds them now.
func (x *Index) Referenced(ctx context.Context) (map[string]bool, error) {
	ticket := x.seq.Add(1)
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.fresh(ctx, x.images, &x.imagesFrom, ticket); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(x.byDigest))
	for d := range x.byDigest {
		out[d] = true
	}
	return out, nil
}

// RecordUpload notes that user uploaded the blob with the given hex digest
// and so holds its content.
func (x *Index) RecordUpload(user, hexDigest string) {
	if user == "" {
		return
	}
	now := x.cfg.Now()
	x.uploadsMu.Lock()
	defer x.uploadsMu.Unlock()
	x.pruneLocked(now)
	users := x.uploads[hexDigest]
	if users == nil {
		users = map[string]time.Time{}
		x.uploads[hexDigest] = users
	}
	users[user] = now
}

// pruneLocked drops expired uploads, at most once a minute.
func (x *Index) pruneLocked(now time.Time) {
	if now.Sub(x.lastPruned) < time.Minute {
		return
	}
	x.lastPruned = now
	for d, users := range x.uploads {
		for u, at := range users {
			if now.Sub(at) > x.cfg.UploadTTL {
				delete(users, u)
			}
		}
		if len(users) == 0 {
			delete(x.uploads, d)
		}
	}
}

// uploaded reports whether user uploaded the blob within UploadTTL.
func (x *Index) uploaded(user, hexDigest string) bool {
	if user == "" {
		return false
	}
	x.uploadsMu.Lock()
	defer x.uploadsMu.Unlock()
	at, ok := x.uploads[hexDigest][user]
	return ok && x.cfg.Now().Sub(at) <= x.cfg.UploadTTL
}

// CanRefer reports whether id may make an image of the blob with the
// given hex digest: cluster admins any blob, users a blob they may read
// or uploaded themselves within UploadTTL. Hosts make no images.
func (x *Index) CanRefer(ctx context.Context, id *auth.Identity, hexDigest string) (bool, error) {
	if id == nil || id.Host != "" {
		return false, nil
	}
	if id.ClusterAdmin || x.uploaded(id.User, hexDigest) {
		return true, nil
	}
	return x.CanRead(ctx, id, hexDigest)
}

// Package volume stores the block volumes of one storage pool: the
// contract between the agent (attach, detach, the data path) and a pool's
// backend (local qcow2 files, Ceph RBD images).
package volume

import (
	"context"
	"errors"
)

// ErrNotFound is returned (wrapped) for a volume or snapshot the backend
// does not hold.
var ErrNotFound = errors.New("volume: not found")

// ErrLocked is returned (wrapped) by Lock when another client holds the
// volume's exclusive lock.
var ErrLocked = errors.New("volume: locked by another client")

// Source says what a new volume starts with: nothing (zeroes), a
// snapshot of another volume of the same pool, or an image file.
type Source struct {
	// Snapshot names VolumeID/SnapshotID of the same pool.
	VolumeID, SnapshotID string
	// ImagePath is a local file (raw or qcow2, Format says which) whose
	// content is copied into the volume.
	ImagePath, ImageFormat string
}

// Attachment is how a running instance reaches a volume's data.
type Attachment struct {
	// QEMU: the -blockdev JSON (one object, node-name set) and any -object
	// arguments it needs (e.g. a secret holding a Ceph key, base64).
	BlockdevJSON string
	Objects      []string
	// Device is a host block device path for containers (a loop device or
	// /dev/nbdN), set by MapBlock.
	Device string
}

// Backend is one storage pool's volumes. Every method is idempotent: a
// retried Create of an existing id with the same size succeeds, Delete of
// a missing id succeeds.
type Backend interface {
	// Create makes the volume id of sizeBytes, filled from src if set.
	Create(ctx context.Context, id string, sizeBytes int64, src *Source) error
	// Delete removes the volume; it fails while snapshots of it exist.
	Delete(ctx context.Context, id string) error
	// Resize grows the volume to sizeBytes (never shrinks).
	Resize(ctx context.Context, id string, sizeBytes int64) error
	// Size returns the volume's size in bytes, or ErrNotFound.
	Size(ctx context.Context, id string) (int64, error)
	// Snapshot takes a point-in-time snapshot snapID of volume id.
	Snapshot(ctx context.Context, id, snapID string) error
	// DeleteSnapshot removes a snapshot.
	DeleteSnapshot(ctx context.Context, id, snapID string) error
	// Blockdev returns how QEMU opens the volume (read-write).
	Blockdev(ctx context.Context, id string) (Attachment, error)
	// MapBlock makes the volume a host block device (for containers) and
	// returns it in Attachment.Device; UnmapBlock undoes it. Both are
	// idempotent.
	MapBlock(ctx context.Context, id string) (Attachment, error)
	UnmapBlock(ctx context.Context, id string) error
	// Lock takes the volume's exclusive lock for this client (host), or
	// returns ErrLocked; Unlock releases it. Backends without a lock of
	// their own (local) rely on etcd alone and return nil.
	Lock(ctx context.Context, id, client string) error
	Unlock(ctx context.Context, id, client string) error
	// Fence cuts a lost host (client) off the pool so that its locks
	// pass to others and its writes cannot land after it; Unfence lets
	// it back. Local backends return nil.
	Fence(ctx context.Context, client string) error
	Unfence(ctx context.Context, client string) error
}

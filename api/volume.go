package api

import (
	"strings"
	"time"
)

// StoragePool is where volumes live (cluster-scoped, written by cluster
// admins): local files on one host's disk, or the RBD images of a pool of
// an existing Ceph cluster.
type StoragePool struct {
	Kind     string            `json:"kind"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     StoragePoolSpec   `json:"spec"`
	Status   StoragePoolStatus `json:"status"`
}

// Storage pool types.
const (
	PoolLocal = "local"
	PoolCeph  = "ceph"
)

// StoragePoolSpec is what an admin asks of a storage pool.
type StoragePoolSpec struct {
	// Type is local or ceph.
	Type string `json:"type"`
	// CapacityGiB bounds the size of one volume of the pool (and, for
	// local pools, the sum on one host); 0 means the default (1024).
	CapacityGiB int64 `json:"capacityGiB,omitempty"`
	// Ceph is set for ceph pools.
	Ceph *CephPool `json:"ceph,omitempty"`
}

// CephPool names a pool of an existing Ceph cluster and how to reach it.
type CephPool struct {
	// Monitors are the monitor addresses (host:port or host).
	Monitors []string `json:"monitors"`
	// Pool is the RADOS pool holding the RBD images.
	Pool string `json:"pool"`
	// User is the cephx user without "client." (default "admin").
	User string `json:"user,omitempty"`
	// Key is the user's cephx secret (base64). It is written, never
	// returned by the API.
	Key string `json:"key,omitempty"`
}

// StoragePoolStatus is what the server reports about a pool.
type StoragePoolStatus struct {
	// KeySet says a Ceph key is stored (the key itself is never shown).
	KeySet bool `json:"keySet,omitempty"`
}

// DefaultPoolCapacityGiB is the capacity of a pool that names none.
const DefaultPoolCapacityGiB = 1024

// Capacity returns the pool's capacity in bytes.
func (s StoragePoolSpec) Capacity() int64 {
	c := s.CapacityGiB
	if c == 0 {
		c = DefaultPoolCapacityGiB
	}
	return c << 30
}

// Meta returns the pool's metadata.
func (o *StoragePool) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns StoragePoolKind.
func (o *StoragePool) GetKind() *Kind { return StoragePoolKind }

// Volume is a block device of a project that outlives instances: made on
// its own, attached to one instance at a time, snapshotted, resized.
type Volume struct {
	Kind     string       `json:"kind"`
	Metadata ObjectMeta   `json:"metadata"`
	Spec     VolumeSpec   `json:"spec"`
	Status   VolumeStatus `json:"status"`
}

// VolumeSpec is what the user asks of a volume.
type VolumeSpec struct {
	// SizeBytes is the volume's size; it may grow, never shrink.
	SizeBytes int64 `json:"sizeBytes"`
	// Pool names the StoragePool.
	Pool string `json:"pool"`
	// FromSnapshot names a VolumeSnapshot of the project (same pool) the
	// volume starts as; FromImage an image of the project (or a public
	// one). At most one of them; immutable.
	FromSnapshot string `json:"fromSnapshot,omitempty"`
	FromImage    string `json:"fromImage,omitempty"`
	// Host, for local pools, is the host the volume lives on. The server
	// chooses it at create when it is empty; immutable.
	Host string `json:"host,omitempty"`
}

// Volume statuses.
const (
	VolumeCreating  = "creating"
	VolumeAvailable = "available"
	VolumeAttaching = "attaching"
	VolumeInUse     = "in-use"
	VolumeDetaching = "detaching"
	VolumeDeleting  = "deleting"
	VolumeError     = "error"
)

// VolumeStatus is what the agents report about a volume.
type VolumeStatus struct {
	// State is creating, available, attaching, in-use, detaching,
	// deleting or error.
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
	// ID names the volume in its backend and is the serial the guest
	// sees (/dev/disk/by-id/virtio-ID); derived from the uid.
	ID string `json:"id,omitempty"`
	// SizeBytes is the size the backend holds now.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// AttachedTo is the instance holding the volume (the server sets it
	// with the attach claim); Device where the instance sees it.
	AttachedTo string `json:"attachedTo,omitempty"`
	Device     string `json:"device,omitempty"`
	// ObservedGeneration is the spec generation the backend last applied.
	ObservedGeneration int64     `json:"observedGeneration,omitempty"`
	UpdatedAt          time.Time `json:"updatedAt,omitempty"`
}

// Meta returns the volume's metadata.
func (o *Volume) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns VolumeKind.
func (o *Volume) GetKind() *Kind { return VolumeKind }

// VolumeSnapshot is a point-in-time copy of a volume of the project.
type VolumeSnapshot struct {
	Kind     string               `json:"kind"`
	Metadata ObjectMeta           `json:"metadata"`
	Spec     VolumeSnapshotSpec   `json:"spec"`
	Status   VolumeSnapshotStatus `json:"status"`
}

// VolumeSnapshotSpec names the volume to copy.
type VolumeSnapshotSpec struct {
	Volume string `json:"volume"`
}

// Snapshot states.
const (
	SnapshotCreating = "creating"
	SnapshotReady    = "ready"
	SnapshotDeleting = "deleting"
	SnapshotError    = "error"
)

// VolumeSnapshotStatus is what the volume's agent reports.
type VolumeSnapshotStatus struct {
	// State is creating, ready, deleting or error.
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
	// ID names the snapshot in the backend; VolumeID the volume's.
	ID        string `json:"id,omitempty"`
	VolumeID  string `json:"volumeID,omitempty"`
	SizeBytes int64  `json:"sizeBytes,omitempty"`
	// Pool and Host are the volume's, copied at create.
	Pool string `json:"pool,omitempty"`
	Host string `json:"host,omitempty"`
}

// Meta returns the snapshot's metadata.
func (o *VolumeSnapshot) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns VolumeSnapshotKind.
func (o *VolumeSnapshot) GetKind() *Kind { return VolumeSnapshotKind }

// InstanceVolume is a volume an instance uses.
type InstanceVolume struct {
	// Name is a Volume of the instance's project.
	Name string `json:"name"`
	// Boot makes it a VM's root disk (in place of the image).
	Boot bool `json:"boot,omitempty"`
	// Path is where a container sees the volume's filesystem (formatted
	// ext4 on first use). VMs ignore it: they see a disk.
	Path string `json:"path,omitempty"`
}

// BackendID returns the backend name of an object with uid, prefix "vol"
// or "snap": at most 20 bytes, the length of a virtio-blk serial.
func BackendID(prefix, uid string) string {
	id := prefix + "-" + strings.ReplaceAll(uid, "-", "")
	if len(id) > 20 {
		id = id[:20]
	}
	return id
}

// VolumeClaim is the store claim an instance holds on each volume it
// uses: one holder, so a volume is attached to one instance at a time.
func VolumeClaim(project, volume string) string {
	return "volume/" + project + "/" + volume
}

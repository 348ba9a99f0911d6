package ceph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/ouroboros-cloud/ouro/volume"
)

// creatingSuffix names an image still being built by Create.
const creatingSuffix = ".creating"

// imageInfo is the part of `rbd info --format json` the backend reads.
type imageInfo struct {
	Size   int64 `json:"size"`
	Parent *struct {
		Pool  string `json:"pool"`
		Image string `json:"image"`
	} `json:"parent"`
}

// info returns an image's info, or volume.ErrNotFound.
func (b *Backend) info(ctx context.Context, name string) (imageInfo, error) {
	var inf imageInfo
	out, err := b.rbd(ctx, "info", "--format", "json", b.spec(name))
	if errors.Is(err, syscall.ENOENT) {
		return inf, fmt.Errorf("ceph: image %s: %w", b.spec(name), volume.ErrNotFound)
	}
	if err != nil {
		return inf, err
	}
	if err := json.Unmarshal(out, &inf); err != nil {
		return inf, fmt.Errorf("ceph: rbd info %s: %w", b.spec(name), err)
	}
	return inf, nil
}

// Create makes volume id of sizeBytes, filled from src if set. With a
// source, sizeBytes 0 means the source's size; a larger size grows the
// new volume, a smaller one is refused.
func (b *Backend) Create(ctx context.Context, id string, sizeBytes int64, src *volume.Source) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	if sizeBytes < 0 || (sizeBytes == 0 && src == nil) {
		return fmt.Errorf("ceph: volume %s: size %d is not positive", id, sizeBytes)
	}
	if inf, err := b.info(ctx, name); err == nil {
		if sizeBytes != 0 && inf.Size != sizeBytes {
			return fmt.Errorf("ceph: volume %s exists with size %d, not %d", id, inf.Size, sizeBytes)
		}
		return nil
	} else if !errors.Is(err, volume.ErrNotFound) {
		return err
	}
	tmp := name + creatingSuffix
	if err := b.removeImage(ctx, tmp); err != nil {
		return err
	}
	if err := b.build(ctx, tmp, sizeBytes, src); err != nil {
		return fmt.Errorf("ceph: create volume %s: %w", id, errors.Join(err, b.removeImage(context.WithoutCancel(ctx), tmp)))
	}
	if _, err := b.rbd(ctx, "rename", b.spec(tmp), b.spec(name)); err != nil {
		return fmt.Errorf("ceph: create volume %s: %w", id, err)
	}
	return nil
}

// build makes image tmp, complete, from src.
func (b *Backend) build(ctx context.Context, tmp string, size int64, src *volume.Source) error {
	switch {
	case src == nil:
		_, err := b.rbd(ctx, "create", "--size", strconv.FormatInt(size, 10)+"B", "--image-feature", features, b.spec(tmp))
		return err
	case src.VolumeID != "" || src.SnapshotID != "":
		if err := b.cloneSnapshot(ctx, tmp, src.VolumeID, src.SnapshotID); err != nil {
			return err
		}
	case src.ImagePath != "":
		if err := b.importImage(ctx, tmp, src.ImagePath, src.ImageFormat, size); err != nil {
			return err
		}
	default:
		return errors.New("empty source")
	}
	return b.growTo(ctx, tmp, size)
}

// cloneSnapshot makes tmp a copy of volume's snapshot: a clone, then
// flattened, so that the new volume depends on neither the snapshot nor
// its volume (either may be deleted later, as on AWS).
func (b *Backend) cloneSnapshot(ctx context.Context, tmp, volID, snapID string) error {
	src, err := image(volID)
	if err != nil {
		return err
	}
	if !namePattern.MatchString(snapID) {
		return fmt.Errorf("bad snapshot id %q", snapID)
	}
	if err := b.protect(ctx, src, snapID); err != nil {
		return err
	}
	if _, err := b.rbd(ctx, "clone", "--image-feature", features, b.spec(src)+"@"+snapID, b.spec(tmp)); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("snapshot %s of volume %s: %w", snapID, volID, volume.ErrNotFound)
		}
		return err
	}
	_, err = b.rbd(ctx, "flatten", "--no-progress", b.spec(tmp))
	return err
}

// importImage fills tmp from a local image file: raw with rbd import,
// qcow2 through QEMU's rbd driver (qemu-img convert).
func (b *Backend) importImage(ctx context.Context, tmp, path, format string, size int64) error {
	switch format {
	case "", "raw":
		_, err := b.rbd(ctx, "import", "--no-progress", "--image-format", "2", "--image-feature", features, "--", path, b.spec(tmp))
		return err
	case "qcow2":
		virt, err := qcow2Size(ctx, path)
		if err != nil {
			return err
		}
		if _, err := b.rbd(ctx, "create", "--size", strconv.FormatInt(max(virt, size), 10)+"B", "--image-feature", features, b.spec(tmp)); err != nil {
			return err
		}
		// With -n qemu-img opens the target as given: a raw node over
		// the rbd one.
		att := b.attachment(tmp, "rbd", "import")
		target := `json:{"driver":"raw","file":` + att.BlockdevJSON + `}`
		args := []string{"convert", "-n", "-f", "qcow2", "--object", b.secretObject("import", true), "-O", "raw", "--", path, target}
		cmd := exec.CommandContext(ctx, "qemu-img", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("qemu-img convert %s: %w: %s", path, err, strings.TrimSpace(string(out)))
		}
		return nil
	default:
		return fmt.Errorf("image format %q is neither raw nor qcow2", format)
	}
}

// qcow2Size returns a qcow2 file's virtual size.
func qcow2Size(ctx context.Context, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output", "json", "-f", "qcow2", "--", path).Output()
	if err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var inf struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &inf); err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return inf.VirtualSize, nil
}

// growTo grows image name to size; 0 keeps its size, a smaller size is
// refused.
func (b *Backend) growTo(ctx context.Context, name string, size int64) error {
	inf, err := b.info(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case size == 0 || size == inf.Size:
		return nil
	case size < inf.Size:
		return fmt.Errorf("size %d is below the source's %d bytes", size, inf.Size)
	}
	_, err = b.rbd(ctx, "resize", "--no-progress", "--size", strconv.FormatInt(size, 10)+"B", b.spec(name))
	return err
}

// removeImage removes an image (none is fine).
func (b *Backend) removeImage(ctx context.Context, name string) error {
	_, err := b.rbd(ctx, "rm", "--no-progress", b.spec(name))
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// snapshotInfo is one entry of `rbd snap ls --format json`.
type snapshotInfo struct {
	Name      string `json:"name"`
	Protected string `json:"protected"`
}

// snapshots lists an image's snapshots.
func (b *Backend) snapshots(ctx context.Context, name string) ([]snapshotInfo, error) {
	out, err := b.rbd(ctx, "snap", "ls", "--format", "json", b.spec(name))
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("ceph: image %s: %w", b.spec(name), volume.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var snaps []snapshotInfo
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("ceph: rbd snap ls %s: %w", b.spec(name), err)
	}
	return snaps, nil
}

// Delete removes volume id. It is refused while the volume has
// snapshots, and while a client still has the image open.
func (b *Backend) Delete(ctx context.Context, id string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	snaps, err := b.snapshots(ctx, name)
	if errors.Is(err, volume.ErrNotFound) {
		return b.removeImage(ctx, name+creatingSuffix)
	}
	if err != nil {
		return err
	}
	if len(snaps) > 0 {
		names := make([]string, len(snaps))
		for i, s := range snaps {
			names[i] = s.Name
		}
		return fmt.Errorf("ceph: volume %s has %d snapshot(s) (%s): delete them first", id, len(snaps), strings.Join(names, ", "))
	}
	if _, err := b.rbd(ctx, "rm", "--no-progress", b.spec(name)); err != nil && !errors.Is(err, syscall.ENOENT) {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("ceph: volume %s is still open by a client (attached somewhere?): %w", id, err)
		}
		return err
	}
	return nil
}

// Resize grows volume id to sizeBytes; it never shrinks.
func (b *Backend) Resize(ctx context.Context, id string, sizeBytes int64) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	inf, err := b.info(ctx, name)
	if err != nil {
		return err
	}
	if sizeBytes < inf.Size {
		return fmt.Errorf("ceph: volume %s: size %d is below its %d bytes: volumes only grow", id, sizeBytes, inf.Size)
	}
	return b.growTo(ctx, name, sizeBytes)
}

// Size returns volume id's size in bytes.
func (b *Backend) Size(ctx context.Context, id string) (int64, error) {
	name, err := image(id)
	if err != nil {
		return 0, err
	}
	inf, err := b.info(ctx, name)
	return inf.Size, err
}

// Snapshot takes snapshot snapID of volume id and protects it, so that
// new volumes can be cloned from it.
func (b *Backend) Snapshot(ctx context.Context, id, snapID string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	if !namePattern.MatchString(snapID) {
		return fmt.Errorf("ceph: bad snapshot id %q", snapID)
	}
	_, err = b.rbd(ctx, "snap", "create", "--no-progress", b.spec(name)+"@"+snapID)
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("ceph: volume %s: %w", id, volume.ErrNotFound)
	case err != nil && !errors.Is(err, syscall.EEXIST):
		return err
	}
	return b.protect(ctx, name, snapID)
}

// protect protects a snapshot unless it is already.
func (b *Backend) protect(ctx context.Context, name, snapID string) error {
	snaps, err := b.snapshots(ctx, name)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.Name != snapID {
			continue
		}
		if s.Protected == "true" {
			return nil
		}
		_, err := b.rbd(ctx, "snap", "protect", b.spec(name)+"@"+snapID)
		if errors.Is(err, syscall.EBUSY) { // protected meanwhile
			return nil
		}
		return err
	}
	return fmt.Errorf("ceph: snapshot %s@%s: %w", b.spec(name), snapID, volume.ErrNotFound)
}

// DeleteSnapshot unprotects and removes snapshot snapID of volume id.
func (b *Backend) DeleteSnapshot(ctx context.Context, id, snapID string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	if !namePattern.MatchString(snapID) {
		return fmt.Errorf("ceph: bad snapshot id %q", snapID)
	}
	snap := b.spec(name) + "@" + snapID
	if _, err := b.rbd(ctx, "snap", "unprotect", snap); err != nil &&
		!errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.EINVAL) {
		return err // EBUSY: clones still depend on it (a Create in flight)
	}
	if _, err := b.rbd(ctx, "snap", "rm", "--no-progress", snap); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

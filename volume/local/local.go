// Package local is the storage pool backend that keeps volumes as sparse
// raw files on one host's disk.
//
// A volume is the file DIR/ID.raw. Raw rather than qcow2 because the same
// file serves both consumers without a translation daemon: QEMU opens it
// with driver=raw over driver=file, and a container reaches it through a
// loop device (losetup), which needs a raw image (a qcow2 file would need
// qemu-nbd, a process per mapping to adopt after an agent restart). Sparse
// files keep the disk cost of an empty volume near zero, as qcow2 would.
//
// A snapshot is a separate sparse copy DIR/ID@SNAP.raw (cp --sparse=always,
// reflinked where the filesystem can). Internal qcow2 snapshots do not
// exist for raw files, and a separate file lets a new volume be made from
// a snapshot by copying it. Every file appears atomically: it is written
// under a temporary name and renamed, so a crash leaves either nothing or
// the whole file, and a retried call finishes the job.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ouroboros-cloud/ouro/volume"
)

// Backend keeps the volumes of a local pool in one directory.
type Backend struct {
	dir string
}

var _ volume.Backend = (*Backend)(nil)

// New returns the backend storing volumes under dir, creating it.
func New(dir string) (*Backend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local volumes: %w", err)
	}
	return &Backend{dir: dir}, nil
}

// validID keeps ids usable as file names, QEMU node names and serials.
var validID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

func checkID(what, id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("local volumes: bad %s id %q", what, id)
	}
	return nil
}

// Path returns the file holding volume id.
func (b *Backend) Path(id string) string { return filepath.Join(b.dir, id+".raw") }

func (b *Backend) snapPath(id, snapID string) string {
	return filepath.Join(b.dir, id+"@"+snapID+".raw")
}

// Create makes the volume file of sizeBytes, from src if set.
func (b *Backend) Create(ctx context.Context, id string, sizeBytes int64, src *volume.Source) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	if sizeBytes <= 0 {
		return fmt.Errorf("local volumes: create %s: size %d", id, sizeBytes)
	}
	path := b.Path(id)
	if fi, err := os.Stat(path); err == nil {
		if fi.Size() != sizeBytes {
			return fmt.Errorf("local volumes: create %s: exists with size %d, not %d", id, fi.Size(), sizeBytes)
		}
		return nil
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	var err error
	switch {
	case src != nil && src.SnapshotID != "":
		err = b.copyFrom(ctx, src, tmp)
	case src != nil && src.ImagePath != "":
		err = convert(ctx, src.ImagePath, src.ImageFormat, tmp)
	default:
		err = createEmpty(tmp)
	}
	if err == nil {
		err = grow(tmp, sizeBytes)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local volumes: create %s: %w", id, err)
	}
	return nil
}

func (b *Backend) copyFrom(ctx context.Context, src *volume.Source, tmp string) error {
	if err := checkID("volume", src.VolumeID); err != nil {
		return err
	}
	if err := checkID("snapshot", src.SnapshotID); err != nil {
		return err
	}
	from := b.snapPath(src.VolumeID, src.SnapshotID)
	if _, err := os.Stat(from); err != nil {
		return fmt.Errorf("snapshot %s of %s: %w", src.SnapshotID, src.VolumeID, volume.ErrNotFound)
	}
	return sparseCopy(ctx, from, tmp)
}

func createEmpty(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// grow extends path to size; a file already larger is an error (the
// source does not fit the volume).
func grow(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > size {
		return fmt.Errorf("content of %d bytes does not fit %d", fi.Size(), size)
	}
	return os.Truncate(path, size)
}

func sparseCopy(ctx context.Context, from, to string) error {
	return run(ctx, "cp", "--sparse=always", "--reflink=auto", "--", from, to)
}

// convert writes image (raw or qcow2) into the raw file to, keeping holes.
func convert(ctx context.Context, image, format, to string) error {
	switch format {
	case "", "raw", "qcow2":
	default:
		return fmt.Errorf("image format %q", format)
	}
	args := []string{"convert", "-q"}
	if format != "" {
		args = append(args, "-f", format)
	}
	args = append(args, "-O", "raw", "-S", "4k", "--", image, to)
	return run(ctx, "qemu-img", args...)
}

// Delete removes the volume file; it fails while snapshots of it exist.
func (b *Backend) Delete(ctx context.Context, id string) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	snaps, err := filepath.Glob(filepath.Join(b.dir, id+"@*.raw"))
	if err != nil {
		return fmt.Errorf("local volumes: delete %s: %w", id, err)
	}
	if len(snaps) > 0 {
		return fmt.Errorf("local volumes: delete %s: %d snapshots depend on it", id, len(snaps))
	}
	if err := b.UnmapBlock(ctx, id); err != nil {
		return err
	}
	_ = os.Remove(b.Path(id) + ".tmp")
	if err := os.Remove(b.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local volumes: delete %s: %w", id, err)
	}
	return nil
}

// Resize grows the volume file to sizeBytes and tells a loop device
// mapping it; it never shrinks.
func (b *Backend) Resize(ctx context.Context, id string, sizeBytes int64) error {
	cur, err := b.Size(ctx, id)
	if err != nil {
		return err
	}
	if sizeBytes < cur {
		return fmt.Errorf("local volumes: resize %s: %d is smaller than %d", id, sizeBytes, cur)
	}
	if sizeBytes == cur {
		return nil
	}
	if err := os.Truncate(b.Path(id), sizeBytes); err != nil {
		return fmt.Errorf("local volumes: resize %s: %w", id, err)
	}
	devs, err := loopDevices(ctx, b.Path(id))
	if err != nil {
		return err
	}
	for _, d := range devs {
		if err := run(ctx, "losetup", "--set-capacity", d); err != nil {
			return fmt.Errorf("local volumes: resize %s: %w", id, err)
		}
	}
	return nil
}

// Size returns the volume's size in bytes.
func (b *Backend) Size(_ context.Context, id string) (int64, error) {
	if err := checkID("volume", id); err != nil {
		return 0, err
	}
	fi, err := os.Stat(b.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("local volumes: %s: %w", id, volume.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("local volumes: %w", err)
	}
	return fi.Size(), nil
}

// Snapshot copies the volume to its snapshot file. The copy is
// crash-consistent only if nothing writes meanwhile: the agent takes
// snapshots of attached volumes after the guest's writes reached the file
// (QEMU opens it without a host cache of its own).
func (b *Backend) Snapshot(ctx context.Context, id, snapID string) error {
	if err := checkID("snapshot", snapID); err != nil {
		return err
	}
	if _, err := b.Size(ctx, id); err != nil {
		return err
	}
	path := b.snapPath(id, snapID)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := sparseCopy(ctx, b.Path(id), tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local volumes: snapshot %s of %s: %w", snapID, id, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("local volumes: snapshot %s of %s: %w", snapID, id, err)
	}
	return nil
}

// DeleteSnapshot removes a snapshot file.
func (b *Backend) DeleteSnapshot(_ context.Context, id, snapID string) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	if err := checkID("snapshot", snapID); err != nil {
		return err
	}
	path := b.snapPath(id, snapID)
	_ = os.Remove(path + ".tmp")
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local volumes: delete snapshot %s of %s: %w", snapID, id, err)
	}
	return nil
}

// Blockdev returns a raw-over-file blockdev whose node name is the id.
func (b *Backend) Blockdev(ctx context.Context, id string) (volume.Attachment, error) {
	if _, err := b.Size(ctx, id); err != nil {
		return volume.Attachment{}, err
	}
	node := map[string]any{
		"driver":    "raw",
		"node-name": id,
		"file": map[string]any{
			"driver":   "file",
			"filename": b.Path(id),
			"aio":      "threads",
		},
		"cache":   map[string]any{"direct": false, "no-flush": false},
		"discard": "unmap",
	}
	js, err := json.Marshal(node)
	if err != nil {
		return volume.Attachment{}, fmt.Errorf("local volumes: %w", err)
	}
	return volume.Attachment{BlockdevJSON: string(js)}, nil
}

// MapBlock attaches the volume file to a loop device, reusing one that
// already maps it (after an agent restart, for example).
func (b *Backend) MapBlock(ctx context.Context, id string) (volume.Attachment, error) {
	if _, err := b.Size(ctx, id); err != nil {
		return volume.Attachment{}, err
	}
	devs, err := loopDevices(ctx, b.Path(id))
	if err != nil {
		return volume.Attachment{}, err
	}
	if len(devs) > 0 {
		return volume.Attachment{Device: devs[0]}, nil
	}
	out, err := output(ctx, "losetup", "--find", "--show", "--direct-io=on", "--", b.Path(id))
	if err != nil {
		return volume.Attachment{}, fmt.Errorf("local volumes: map %s: %w", id, err)
	}
	return volume.Attachment{Device: strings.TrimSpace(out)}, nil
}

// UnmapBlock detaches every loop device mapping the volume file.
func (b *Backend) UnmapBlock(ctx context.Context, id string) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	devs, err := loopDevices(ctx, b.Path(id))
	if err != nil {
		return err
	}
	for _, d := range devs {
		if err := run(ctx, "losetup", "--detach", d); err != nil {
			return fmt.Errorf("local volumes: unmap %s: %w", id, err)
		}
	}
	return nil
}

// loopDevices lists the loop devices backed by path.
func loopDevices(ctx context.Context, path string) ([]string, error) {
	out, err := output(ctx, "losetup", "--noheadings", "--output", "NAME", "--associated", path)
	if err != nil {
		return nil, fmt.Errorf("local volumes: list loop devices: %w", err)
	}
	var devs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			devs = append(devs, l)
		}
	}
	return devs, nil
}

// Lock returns nil: a local volume's single writer is enforced in etcd.
func (b *Backend) Lock(context.Context, string, string) error { return nil }

// Unlock returns nil.
func (b *Backend) Unlock(context.Context, string, string) error { return nil }

// Fence returns nil: a lost host takes its local volumes with it.
func (b *Backend) Fence(context.Context, string) error { return nil }

// Unfence returns nil.
func (b *Backend) Unfence(context.Context, string) error { return nil }

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

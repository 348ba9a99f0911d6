package ceph

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/volume"
)

const mib = 1 << 20

// TestVolumeLifecycle creates, grows, measures and deletes a volume,
// each step also retried as the contract's idempotence requires.
func TestVolumeLifecycle(t *testing.T) {
	b, _ := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	const id = "lifecycle"
	if err := b.Create(ctx, id, 8*mib, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, id, 8*mib, nil); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	if err := b.Create(ctx, id, 16*mib, nil); err == nil {
		t.Fatal("create of an existing volume with another size succeeded")
	}
	if got, err := b.Size(ctx, id); err != nil || got != 8*mib {
		t.Fatalf("Size = %d, %v; want %d", got, err, 8*mib)
	}
	if err := b.Resize(ctx, id, 24*mib); err != nil {
		t.Fatal(err)
	}
	if err := b.Resize(ctx, id, 4*mib); err == nil || !strings.Contains(err.Error(), "only grow") {
		t.Fatalf("shrink: %v, want refused", err)
	}
	if got, _ := b.Size(ctx, id); got != 24*mib {
		t.Fatalf("Size after resize = %d, want %d", got, 24*mib)
	}
	if err := b.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, id); err != nil {
		t.Fatalf("delete of a deleted volume: %v", err)
	}
	if _, err := b.Size(ctx, id); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("Size of a deleted volume: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "a/b", "a@b", "-x", "a b"} {
		if err := b.Create(ctx, bad, mib, nil); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
}

// TestSnapshotAndClone writes through QEMU's rbd driver, reads back with
// rbd export, and checks that a volume made from a snapshot holds the
// data of the snapshot, not what was written after it.
func TestSnapshotAndClone(t *testing.T) {
	b, c := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	const id, clone = "snapsrc", "snapclone"
	if err := b.Create(ctx, id, 16*mib, nil); err != nil {
		t.Fatal(err)
	}
	att, err := b.Blockdev(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	qemuIO(t, ctx, att, "write -P 0xab 0 1M")
	if got := exportPrefix(t, ctx, c, id, mib); !filled(got, 0xab) {
		t.Fatal("rbd export does not read what QEMU wrote")
	}
	for range 2 {
		if err := b.Snapshot(ctx, id, "s1"); err != nil {
			t.Fatal(err)
		}
	}
	err = b.Delete(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "s1") {
		t.Fatalf("delete with a snapshot: %v, want refused naming s1", err)
	}
	qemuIO(t, ctx, att, "write -P 0xcd 0 1M")
	if err := b.Create(ctx, clone, 32*mib, &volume.Source{VolumeID: id, SnapshotID: "s1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Size(ctx, clone); got != 32*mib {
		t.Fatalf("clone size %d, want %d", got, 32*mib)
	}
	// The clone is flattened: the snapshot and its volume may go first.
	for range 2 {
		if err := b.DeleteSnapshot(ctx, id, "s1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := exportPrefix(t, ctx, c, clone, mib); !filled(got, 0xab) {
		t.Fatal("the volume made from the snapshot does not hold the snapshot's data")
	}
	if err := b.Create(ctx, "fromgone", 0, &volume.Source{VolumeID: id, SnapshotID: "s1"}); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("create from a missing snapshot: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, clone); err != nil {
		t.Fatal(err)
	}
}

// TestCreateFromImage fills volumes from a raw and a qcow2 file.
func TestCreateFromImage(t *testing.T) {
	b, c := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := make([]byte, 2*mib)
	for i := range data {
		data[i] = 0x5e
	}
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(dir, "disk.qcow2")
	for _, args := range [][]string{
		{"qemu-img", "create", "-q", "-f", "qcow2", qcow, "4M"},
		{"qemu-io", "-f", "qcow2", "-c", "write -P 0x7a 0 1M", qcow},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	tests := []struct {
		id, path, format string
		size, wantSize   int64
		want             byte
	}{
		{"fromraw", raw, "raw", 8 * mib, 8 * mib, 0x5e},
		{"fromqcow2", qcow, "qcow2", 0, 4 * mib, 0x7a},
	}
	// A failed create leaves nothing behind, not even its temporary image.
	if err := b.Create(ctx, "frommissing", 0, &volume.Source{ImagePath: filepath.Join(dir, "missing"), ImageFormat: "raw"}); err == nil {
		t.Fatal("create from a missing file succeeded")
	}
	out, err := c.RBD(ctx, "ls", "--format", "json", c.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "frommissing") {
		t.Fatalf("images after a failed create: %s", out)
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if err := b.Create(ctx, tt.id, tt.size, &volume.Source{ImagePath: tt.path, ImageFormat: tt.format}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Delete(ctx, tt.id) })
			if got, _ := b.Size(ctx, tt.id); got != tt.wantSize {
				t.Errorf("size %d, want %d", got, tt.wantSize)
			}
			if got := exportPrefix(t, ctx, c, tt.id, mib); !filled(got, tt.want) {
				t.Errorf("volume does not hold the image's data")
			}
		})
	}
}

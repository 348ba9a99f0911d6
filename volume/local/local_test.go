package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ouroboros-cloud/ouro/volume"
)

const mib = 1 << 20

func newBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

func TestCreateIdempotentAndSize(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Create(ctx, "vol-a", 8*mib, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "vol-a", 8*mib, nil); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	if err := b.Create(ctx, "vol-a", 16*mib, nil); err == nil {
		t.Fatal("create of an existing id with another size succeeded")
	}
	size, err := b.Size(ctx, "vol-a")
	if err != nil || size != 8*mib {
		t.Fatalf("size = %d, %v", size, err)
	}
	if _, err := b.Size(ctx, "vol-missing"); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("size of missing volume: %v", err)
	}
	for _, id := range []string{"", "../x", "Vol", "a/b"} {
		if err := b.Create(ctx, id, mib, nil); err == nil {
			t.Errorf("create %q succeeded", id)
		}
	}
}

func TestResize(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Create(ctx, "vol-r", 4*mib, nil); err != nil {
		t.Fatal(err)
	}
	writeAt(t, b.Path("vol-r"), 0, []byte("keep"))
	tests := []struct {
		size    int64
		wantErr bool
	}{
		{8 * mib, false},
		{8 * mib, false},
		{2 * mib, true},
	}
	for _, tt := range tests {
		err := b.Resize(ctx, "vol-r", tt.size)
		if (err != nil) != tt.wantErr {
			t.Fatalf("resize to %d: %v", tt.size, err)
		}
	}
	if got, _ := b.Size(ctx, "vol-r"); got != 8*mib {
		t.Fatalf("size after resize = %d", got)
	}
	if got := readAt(t, b.Path("vol-r"), 0, 4); string(got) != "keep" {
		t.Fatalf("data after resize = %q", got)
	}
	if err := b.Resize(ctx, "vol-none", 8*mib); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("resize of missing volume: %v", err)
	}
}

func TestSnapshotRestoreAndDeleteOrder(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Create(ctx, "vol-s", 4*mib, nil); err != nil {
		t.Fatal(err)
	}
	writeAt(t, b.Path("vol-s"), mib, []byte("old-marker"))
	for i := 0; i < 2; i++ {
		if err := b.Snapshot(ctx, "vol-s", "snap-1"); err != nil {
			t.Fatalf("snapshot (try %d): %v", i, err)
		}
	}
	writeAt(t, b.Path("vol-s"), mib, []byte("new-marker"))
	src := &volume.Source{VolumeID: "vol-s", SnapshotID: "snap-1"}
	if err := b.Create(ctx, "vol-from-snap", 8*mib, src); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, b.Path("vol-from-snap"), mib, 10); string(got) != "old-marker" {
		t.Fatalf("restored data = %q", got)
	}
	if size, _ := b.Size(ctx, "vol-from-snap"); size != 8*mib {
		t.Fatalf("restored size = %d", size)
	}
	if err := b.Create(ctx, "vol-small", mib, src); err == nil {
		t.Fatal("created a volume smaller than its snapshot")
	}
	bad := &volume.Source{VolumeID: "vol-s", SnapshotID: "snap-none"}
	if err := b.Create(ctx, "vol-bad", 8*mib, bad); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("create from a missing snapshot: %v", err)
	}
	if err := b.Delete(ctx, "vol-s"); err == nil {
		t.Fatal("deleted a volume with a snapshot")
	}
	if err := b.DeleteSnapshot(ctx, "vol-s", "snap-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSnapshot(ctx, "vol-s", "snap-1"); err != nil {
		t.Fatalf("retried snapshot delete: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Delete(ctx, "vol-s"); err != nil {
			t.Fatalf("delete (try %d): %v", i, err)
		}
	}
	if _, err := b.Size(ctx, "vol-s"); !errors.Is(err, volume.ErrNotFound) {
		t.Fatalf("deleted volume: %v", err)
	}
}

func TestCreateFromImage(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	dir := t.TempDir()
	raw := filepath.Join(dir, "image.raw")
	if err := os.WriteFile(raw, append(bytes.Repeat([]byte{0}, 4096), []byte("image-marker")...), 0o600); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(dir, "image.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	tests := []struct {
		id, path, format string
	}{
		{"vol-raw", raw, "raw"},
		{"vol-qcow", qcow, "qcow2"},
	}
	for _, tt := range tests {
		err := b.Create(ctx, tt.id, 2*mib, &volume.Source{ImagePath: tt.path, ImageFormat: tt.format})
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if got := readAt(t, b.Path(tt.id), 4096, 12); string(got) != "image-marker" {
			t.Fatalf("%s: data = %q", tt.id, got)
		}
		if size, _ := b.Size(ctx, tt.id); size != 2*mib {
			t.Fatalf("%s: size = %d", tt.id, size)
		}
	}
}

func TestBlockdevJSON(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Create(ctx, "vol-q", mib, nil); err != nil {
		t.Fatal(err)
	}
	att, err := b.Blockdev(ctx, "vol-q")
	if err != nil {
		t.Fatal(err)
	}
	var node struct {
		Driver string `json:"driver"`
		Node   string `json:"node-name"`
		File   struct {
			Driver, Filename string
		} `json:"file"`
	}
	if err := json.Unmarshal([]byte(att.BlockdevJSON), &node); err != nil {
		t.Fatal(err)
	}
	if node.Driver != "raw" || node.Node != "vol-q" || node.File.Driver != "file" || node.File.Filename != b.Path("vol-q") {
		t.Fatalf("blockdev = %s", att.BlockdevJSON)
	}
	// QEMU itself accepts the node: qemu-img info with the same JSON.
	out, err := exec.Command("qemu-img", "info", "--output=json", "json:"+att.BlockdevJSON).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, out)
	}
}

func TestMapBlockLoop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Create(ctx, "vol-loop", 8*mib, nil); err != nil {
		t.Fatal(err)
	}
	att, err := b.MapBlock(ctx, "vol-loop")
	if err != nil {
		t.Skipf("no loop device here: %v", err)
	}
	t.Cleanup(func() { _ = b.UnmapBlock(context.Background(), "vol-loop") })
	again, err := b.MapBlock(ctx, "vol-loop")
	if err != nil || again.Device != att.Device {
		t.Fatalf("second map = %q, %v; first %q", again.Device, err, att.Device)
	}
	if err := b.Resize(ctx, "vol-loop", 16*mib); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blockdev", "--getsize64", att.Device).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimSpace(out)); got != "16777216" {
		t.Fatalf("loop device size after resize = %s", got)
	}
	for i := 0; i < 2; i++ {
		if err := b.UnmapBlock(ctx, "vol-loop"); err != nil {
			t.Fatalf("unmap (try %d): %v", i, err)
		}
	}
	if devs, _ := loopDevices(ctx, b.Path("vol-loop")); len(devs) != 0 {
		t.Fatalf("still mapped: %v", devs)
	}
}

package ceph

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// run runs a program for a test.
func runCmd(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMapBlockFilesystem makes a file system on a mapped volume and finds
// its file again after unmapping and mapping again.
func TestMapBlockFilesystem(t *testing.T) {
	for _, bin := range []string{"qemu-storage-daemon", "losetup", "mkfs.ext4"} {
		testenv.NeedBinary(t, bin)
	}
	b, _ := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	const id = "blockfs"
	if err := b.Create(ctx, id, 64*mib, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.UnmapBlock(context.Background(), id)
		_ = b.Delete(context.Background(), id)
	})
	mnt := t.TempDir()
	att, err := b.MapBlock(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.MapBlock(ctx, id)
	if err != nil || again.Device != att.Device {
		t.Fatalf("second MapBlock = %q, %v; want %q", again.Device, err, att.Device)
	}
	runCmd(t, ctx, "mkfs.ext4", "-q", att.Device)
	runCmd(t, ctx, "mount", att.Device, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "marker"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, ctx, "umount", mnt)
	for range 2 {
		if err := b.UnmapBlock(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	att, err = b.MapBlock(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, ctx, "mount", att.Device, mnt)
	got, err := os.ReadFile(filepath.Join(mnt, "marker"))
	runCmd(t, ctx, "umount", mnt)
	if err != nil || string(got) != "kept" {
		t.Fatalf("marker after remap = %q, %v", got, err)
	}
	if err := b.UnmapBlock(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// TestOSDKillDuringWrites kills one of the three OSDs with SIGKILL while
// a block device of the volume is written, and checks every byte.
func TestOSDKillDuringWrites(t *testing.T) {
	testenv.NeedBinary(t, "qemu-storage-daemon")
	b, c := newBackend(t)
	ctx := testCtx(t, 5*time.Minute)
	const id = "osdkill"
	const size = 48 * mib
	if err := b.Create(ctx, id, size, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.UnmapBlock(context.Background(), id)
		_ = b.Delete(context.Background(), id)
	})
	data := make([]byte, size)
	_, _ = rand.Read(data)
	src := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	att, err := b.MapBlock(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dd := exec.CommandContext(ctx, "dd", "if="+src, "of="+att.Device, "bs=256k", "oflag=direct", "conv=fsync", "status=none")
	var ddOut bytes.Buffer
	dd.Stdout, dd.Stderr = &ddOut, &ddOut
	if err := dd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill an OSD once the writes are under way.
	osd := c.OSDIDs()[1]
	waitWritten(t, ctx, c, id)
	if err := c.KillOSD(osd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.StartOSD(osd)
		_ = c.WaitHealthy(context.Background())
	})
	if err := dd.Wait(); err != nil {
		t.Fatalf("dd during the OSD kill: %v: %s", err, ddOut.String())
	}
	if err := b.UnmapBlock(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := exportPrefix(t, ctx, c, id, size); sum(got) != sum(data) {
		t.Fatal("the volume does not hold what was written while an OSD was killed")
	}
	if err := c.StartOSD(osd); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if got := exportPrefix(t, ctx, c, id, size); sum(got) != sum(data) {
		t.Fatal("the volume lost data after the OSD came back")
	}
}

// waitWritten waits until the image has objects, that is until writes
// reached the OSDs.
func waitWritten(t *testing.T, ctx context.Context, c interface {
	RBD(context.Context, ...string) ([]byte, error)
}, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, err := c.RBD(ctx, "du", "--format", "json", "rbd/"+imagePrefix+id)
		if err == nil {
			var du struct {
				Images []struct {
					Used int64 `json:"used_size"`
				} `json:"images"`
			}
			if json.Unmarshal(out, &du) == nil && len(du.Images) > 0 && du.Images[0].Used >= 8*mib {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no writes reached the cluster within a minute")
}

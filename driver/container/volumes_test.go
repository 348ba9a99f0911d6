package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/volume/local"
)

// TestContainerVolumeKeepsData runs a container that writes a marker to a
// fresh local volume (formatted on first use), deletes it, and runs a
// second container on the same volume that reads the marker back. No
// mount is left on the host.
func TestContainerVolumeKeepsData(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	b, err := local.New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "vol-c", 16<<20, nil); err != nil {
		t.Fatal(err)
	}
	att, err := b.MapBlock(ctx, "vol-c")
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	t.Cleanup(func() { b.UnmapBlock(context.Background(), "vol-c") })
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	img := busyboxImage(t, blobs)
	img.Config.Entrypoint = []string{"sh", "-c"}
	vol := driver.Volume{ID: "vol-c", Path: "/var/lib/data", Device: att.Device}
	run := func(script, want string) {
		t.Helper()
		img.Config.Cmd = []string{script}
		id := uniqueID(t)
		createContainer(t, d, driver.Spec{ID: id, Name: "vol", Image: img, Volumes: []driver.Volume{vol}})
		if err := d.Start(ctx, id); err != nil {
			t.Fatalf("Start: %v", err)
		}
		wait.For(t, 20*time.Second, "the container to exit", func() bool { return inspect(t, d, id).HasExitCode })
		if st := inspect(t, d, id); st.ExitCode != 0 {
			data, _ := os.ReadFile(d.LogPath(id))
			t.Fatalf("exit code %d: %s", st.ExitCode, data)
		}
		if data, _ := os.ReadFile(d.LogPath(id)); !strings.Contains(string(data), want) {
			t.Fatalf("log %q lacks %q", data, want)
		}
		dir := volumeDir(d.paths(id), "vol-c")
		if err := d.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if mounted, _ := isMounted(dir); mounted {
			t.Fatalf("%s still mounted after delete", dir)
		}
	}
	run("echo kept-across-instances > /var/lib/data/marker && echo wrote", "wrote")
	run("cat /var/lib/data/marker", "kept-across-instances")
}

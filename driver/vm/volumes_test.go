package vm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/volume/local"
)

func TestVolumeArgs(t *testing.T) {
	bd := `{"driver":"raw","node-name":"vol-a","file":{"driver":"file","filename":"/v/vol-a.raw"}}`
	tests := []struct {
		name    string
		l       launch
		want    []string
		notWant []string
	}{
		{
			name: "q35: root ports, data volume on its port",
			l: launch{arch: "amd64", machine: "q35", kernel: "/k",
				volumes: []attachedVolume{{Volume: driver.Volume{ID: "vol-a", BlockdevJSON: bd}, Port: 2}}},
			want: []string{"pcie-root-port,id=hp0,chassis=16", "pcie-root-port,id=hp7,chassis=23", bd,
				"virtio-blk-pci,drive=vol-a,id=vd-vol-a,serial=vol-a,bus=hp2"},
		},
		{
			name: "pc: no root ports, boot volume without a kernel boots first",
			l: launch{arch: "amd64", machine: "pc",
				volumes: []attachedVolume{{Volume: driver.Volume{ID: "vol-a", BlockdevJSON: bd, Boot: true}, Port: -1}}},
			want:    []string{"virtio-blk-pci,drive=vol-a,id=vd-vol-a,serial=vol-a,bootindex=0"},
			notWant: []string{"pcie-root-port,id=hp0,chassis=16"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.l.volumeArgs()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
			for _, w := range tt.notWant {
				if slices.Contains(got, w) {
					t.Errorf("unexpected %q in %q", w, got)
				}
			}
		})
	}
	bad := launch{arch: "amd64", machine: "q35", volumes: []attachedVolume{{Volume: driver.Volume{ID: "vol-a", BlockdevJSON: `{}`}}}}
	if _, err := bad.volumeArgs(); err == nil {
		t.Fatal("a blockdev without node-name was accepted")
	}
}

// findDisk is a guest shell command that prints OURO-FOUND-<serial> <dev>
// once a virtio disk with that serial appears (within about 60 s).
func findDisk(serial string) string {
	return `i=0; while [ $i -lt 300 ]; do for b in /sys/block/vd*; do if [ "$(cat $b/serial 2>/dev/null)" = ` + serial +
		` ]; then echo OURO-FOUND-$(cat $b/serial) ${b##*/}; i=999; fi; done; i=$((i+1)); [ $i -lt 999 ] && sleep 0.2; done`
}

// TestVMVolumesBootAndHotplug boots the tiny image with a local volume
// attached at start, finds it in the guest by its serial and writes a
// marker to it, then hot-plugs a second volume and unplugs both while the
// guest runs. The marker is on the host's volume file afterwards.
func TestVMVolumesBootAndHotplug(t *testing.T) {
	needQEMU(t)
	kernel, initrd := testimage.Tiny(t)
	blobs := newFakeBlobs()
	kb := blobs.addFile(t, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(t, initrd, api.MediaTypeInitrd)
	d := testDriver(t, blobs, nil)
	ctx := context.Background()
	b, err := local.New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	vol := func(id string) driver.Volume {
		t.Helper()
		if err := b.Create(ctx, id, 16<<20, nil); err != nil {
			t.Fatal(err)
		}
		att, err := b.Blockdev(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return driver.Volume{ID: id, BlockdevJSON: att.BlockdevJSON}
	}
	id := testID(t)
	cleanupVM(t, d, id)
	spec := driver.Spec{ID: id, Name: "tiny-vol",
		Image:     api.ImageSpec{Format: api.FormatKernel, Kernel: &kb, Initrd: &ib, Cmdline: "loglevel=4"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 128},
		Volumes:   []driver.Volume{vol("vol-a")}}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, "OURO-READY", 1)
	consoleRun(t, d, id, findDisk("vol-a"), "OURO-FOUND-vol-a vd")
	consoleRun(t, d, id, "echo volume-marker | dd of=/dev/$(for b in /sys/block/vd*; do [ \"$(cat $b/serial)\" = vol-a ] && echo ${b##*/}; done) conv=fsync 2>/dev/null; echo OURO-WR''OTE", "OURO-WROTE")

	// Hot-plug: attach → the guest sees the disk.
	vb := vol("vol-b")
	start := time.Now()
	if err := d.AttachVolume(ctx, id, vb); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachVolume(ctx, id, vb); err != nil {
		t.Fatalf("second attach: %v", err)
	}
	consoleRun(t, d, id, findDisk("vol-b"), "OURO-FOUND-vol-b vd")
	t.Logf("attach → visible in the guest (TCG, console round trip included): %v", time.Since(start).Round(10*time.Millisecond))
	if got, _ := d.AttachedVolumes(ctx, id); len(got) != 2 {
		t.Fatalf("attached volumes = %+v", got)
	}
	for _, v := range []string{"vol-b", "vol-a"} {
		if err := d.DetachVolume(ctx, id, v); err != nil {
			t.Fatalf("detach %s: %v", v, err)
		}
	}
	if err := d.DetachVolume(ctx, id, "vol-a"); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if got, _ := d.AttachedVolumes(ctx, id); len(got) != 0 {
		t.Fatalf("attached volumes after detach = %+v", got)
	}
	data, err := os.ReadFile(b.Path("vol-a"))
	if err != nil || !bytes.HasPrefix(data, []byte("volume-marker\n")) {
		t.Fatalf("volume file starts %q, %v", strings.TrimRight(string(data[:20]), "\x00"), err)
	}
}

// BenchmarkVolumeAttachVisible measures a volume hot-plug into a running
// TCG guest: from AttachVolume until the guest's shell finds a disk with
// the volume's serial (a loop in the guest polling /sys/block every
// 10 ms, started before the attach), then unplugs it again.
func BenchmarkVolumeAttachVisible(b *testing.B) {
	needQEMUB(b)
	kernel, initrd := testimage.Tiny(b)
	blobs := newFakeBlobs()
	kb := blobs.addFile(b, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(b, initrd, api.MediaTypeInitrd)
	d := testDriver(b, blobs, nil)
	ctx := context.Background()
	bk, err := local.New(filepath.Join(b.TempDir(), "volumes"))
	if err != nil {
		b.Fatal(err)
	}
	id := testID(b)
	b.Cleanup(func() { d.Delete(context.Background(), id) })
	spec := driver.Spec{ID: id, Name: "tiny-bench",
		Image:     api.ImageSpec{Format: api.FormatKernel, Kernel: &kb, Initrd: &ib, Cmdline: "loglevel=4"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 128}}
	if err := d.Create(ctx, spec); err != nil {
		b.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	waitLogB(b, d, id, "OURO-READY")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		vid := fmt.Sprintf("vol-b%d", i)
		if err := bk.Create(ctx, vid, 16<<20, nil); err != nil {
			b.Fatal(err)
		}
		att, err := bk.Blockdev(ctx, vid)
		if err != nil {
			b.Fatal(err)
		}
		con, err := d.Console(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		conn := con.(net.Conn)
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
		// The echo of the typed line shows the loop started; the guest's
		// answer (Q<i>, which the typed text does not contain) that it
		// saw the disk.
		fmt.Fprintf(conn, "\ncd /sys/block\nuntil grep -qs %s vd*/serial;do usleep 9999;done;echo Q''%d\n", vid, i)
		readUntil(b, conn, fmt.Sprintf("Q''%d", i))
		start := time.Now()
		if err := d.AttachVolume(ctx, id, driver.Volume{ID: vid, BlockdevJSON: att.BlockdevJSON}); err != nil {
			b.Fatal(err)
		}
		readUntil(b, conn, fmt.Sprintf("Q%d", i))
		total += time.Since(start)
		conn.Close()
		if err := d.DetachVolume(ctx, id, vid); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/attach-visible")
}

// readUntil reads conn until want appears.
func readUntil(b *testing.B, conn net.Conn, want string) {
	b.Helper()
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			b.Fatalf("console: %v before %q; got %q", err, want, got.String())
		}
	}
}

func needQEMUB(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("needs qemu-system-x86_64")
	}
}

func waitLogB(b *testing.B, d *Driver, id, want string) {
	b.Helper()
	deadline := time.Now().Add(bootTimeout)
	for {
		data, _ := os.ReadFile(d.LogPath(id))
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %q in the serial log", want)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a condition with a deadline
	}
}

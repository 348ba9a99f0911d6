package vm

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/cephtest"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/volume"
	"github.com/ouroboros-cloud/ouro/volume/ceph"
	"github.com/ouroboros-cloud/ouro/volume/local"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// guestIOs is the number of 4 KiB I/Os of each pass (8 MiB).
const guestIOs = 2048

// BenchmarkVolumeGuestThroughput measures 4 KiB sequential writes and
// reads, one at a time and uncached (O_DIRECT), from inside a TCG guest on
// a local and a Ceph volume attached at boot, against the same I/O on the
// host in the same run: dd with O_DIRECT on a local volume's file, and
// rbd bench (one I/O in flight, no cache) on an image of the same pool.
// The guest's figure is the time from typing the dd command on the
// console until the guest printed it was done, over the I/O count. The
// guest has busybox only, so there is no random pattern inside it; the
// host's random figure (rbd bench) is reported for reference.
func BenchmarkVolumeGuestThroughput(b *testing.B) {
	needQEMUB(b)
	cl := cephtest.Shared(b)
	kernel, initrd := testimage.Tiny(b)
	blobs := newFakeBlobs()
	kb := blobs.addFile(b, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(b, initrd, api.MediaTypeInitrd)
	d := testDriver(b, blobs, nil)
	ctx := context.Background()

	lb, err := local.New(filepath.Join(b.TempDir(), "volumes"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := cl.NewClient(ctx, "vmbench")
	if err != nil {
		b.Fatal(err)
	}
	cb, err := ceph.New(ceph.Config{Monitors: []string{cl.Monitor}, Pool: cl.Pool, User: "vmbench", Key: key, Dir: filepath.Join(b.TempDir(), "ceph")})
	if err != nil {
		b.Fatal(err)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	localID, cephID, hostID := "gl"+suffix, "gc"+suffix, "gh"+suffix
	vol := func(bk volume.Backend, id string) driver.Volume {
		b.Helper()
		if err := bk.Create(ctx, id, 64<<20, nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bk.Delete(context.Background(), id) })
		att, err := bk.Blockdev(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		return driver.Volume{ID: id, BlockdevJSON: att.BlockdevJSON, Objects: att.Objects}
	}
	vols := []driver.Volume{vol(lb, localID), vol(cb, cephID)}
	if err := cb.Create(ctx, hostID, 64<<20, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cb.Delete(context.Background(), hostID) })

	id := testID(b)
	b.Cleanup(func() { d.Delete(context.Background(), id) })
	spec := driver.Spec{ID: id, Name: "tiny-io",
		Image:     api.ImageSpec{Format: api.FormatKernel, Kernel: &kb, Initrd: &ib, Cmdline: "loglevel=4"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 128}, Volumes: vols}
	if err := d.Create(ctx, spec); err != nil {
		b.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	waitLogB(b, d, id, "OURO-READY")

	// guest runs dd on the disk of serial and returns I/Os per second.
	guest := func(serial, dd string, n int) float64 {
		b.Helper()
		con, err := d.Console(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		defer con.Close()
		conn := con.(net.Conn)
		conn.SetDeadline(time.Now().Add(5 * time.Minute))
		fmt.Fprintf(conn, "\nfor b in /sys/block/vd*;do [ \"$(cat $b/serial)\" = %s ] && D=/dev/${b##*/};done;echo R''%d\n", serial, n)
		readUntil(b, conn, fmt.Sprintf("R%d", n))
		start := time.Now()
		fmt.Fprintf(conn, "%s 2>/dev/null;echo D''%d\n", dd, n)
		readUntil(b, conn, fmt.Sprintf("D%d", n))
		return guestIOs / time.Since(start).Seconds()
	}
	write := fmt.Sprintf("dd if=/dev/zero of=$D bs=4096 count=%d oflag=direct", guestIOs)
	read := fmt.Sprintf("dd if=$D of=/dev/null bs=4096 count=%d iflag=direct", guestIOs)
	hostDD := func(args ...string) float64 {
		b.Helper()
		start := time.Now()
		if out, err := exec.Command("dd", args...).CombinedOutput(); err != nil {
			b.Fatalf("dd %v: %v: %s", args, err, out)
		}
		return guestIOs / time.Since(start).Seconds()
	}
	file := lb.Path(localID)
	rbdBench := func(io, pattern string) float64 {
		b.Helper()
		out, err := cl.RBD(ctx, "bench", "--io-type", io, "--io-size", "4096", "--io-threads", "1",
			"--io-total", strconv.Itoa(guestIOs*4096), "--io-pattern", pattern, "--rbd-cache=false", cl.Pool+"/ouro-"+hostID)
		if err != nil {
			b.Fatal(err)
		}
		m := regexp.MustCompile(`elapsed:\s+([\d.]+)\s+ops:\s+(\d+)\s+ops/sec:\s+([\d.]+)`).FindSubmatch(out)
		if m == nil {
			b.Fatalf("rbd bench said %q", out)
		}
		v, _ := strconv.ParseFloat(string(m[3]), 64)
		return v
	}
	sum := map[string]float64{}
	for i := 0; i < b.N; i++ {
		sum["local-guest-seq-write-iops"] += guest(localID, write, 4*i)
		sum["local-guest-seq-read-iops"] += guest(localID, read, 4*i+1)
		sum["ceph-guest-seq-write-iops"] += guest(cephID, write, 4*i+2)
		sum["ceph-guest-seq-read-iops"] += guest(cephID, read, 4*i+3)
		sum["local-host-seq-write-iops"] += hostDD("if=/dev/zero", "of="+file, "bs=4096", fmt.Sprint("count=", guestIOs), "oflag=direct", "conv=notrunc")
		sum["local-host-seq-read-iops"] += hostDD("if="+file, "of=/dev/null", "bs=4096", fmt.Sprint("count=", guestIOs), "iflag=direct")
		sum["ceph-host-seq-write-iops"] += rbdBench("write", "seq")
		sum["ceph-host-seq-read-iops"] += rbdBench("read", "seq")
		sum["ceph-host-rand-write-iops"] += rbdBench("write", "rand")
		sum["ceph-host-rand-read-iops"] += rbdBench("read", "rand")
	}
	for k, v := range sum {
		b.ReportMetric(v/float64(b.N), k)
	}
}

package ceph

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/cephtest"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// Benchmark parameters, the same on every path: 4 KiB writes, 16 in
// flight, 8,192 of them (32 MiB), no client cache.
const (
	benchIOSize = 4096
	benchDepth  = 16
	benchCount  = 8192
)

var (
	rbdBenchOps = regexp.MustCompile(`elapsed:\s*([0-9.]+)\s+ops:\s*([0-9]+)`)
	qemuBenchS  = regexp.MustCompile(`Run completed in ([0-9.]+) seconds`)
)

// BenchmarkDataPath measures 4 KiB writes to a volume by the three ways
// to it: librbd on the host (rbd bench, sequential and random; the
// reference), QEMU's rbd driver as a VM uses it (qemu-img bench,
// sequential: it has no random mode), and a container's block device
// (qemu-img bench on the loop device over qemu-storage-daemon).
// Run: go test -run '^$' -bench DataPath -benchtime 1x ./volume/ceph/
func BenchmarkDataPath(b *testing.B) {
	testenv.NeedBinary(b, "qemu-img")
	c := cephtest.Shared(b)
	be, err := New(Config{Monitors: []string{c.Monitor}, Pool: c.Pool, User: c.User, Key: c.Key, Dir: b.TempDir(), Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const id = "bench"
	if err := be.Create(ctx, id, 256*mib, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = be.UnmapBlock(context.Background(), id)
		_ = be.Delete(context.Background(), id)
	})
	hostOps := func(pattern string) float64 {
		out, err := c.RBD(ctx, "bench", "--io-type", "write", "--io-pattern", pattern, "--io-size", strconv.Itoa(benchIOSize),
			"--io-threads", strconv.Itoa(benchDepth), "--io-total", strconv.Itoa(benchIOSize*benchCount),
			"--rbd-cache=false", c.Pool+"/"+imagePrefix+id)
		if err != nil {
			b.Fatal(err)
		}
		m := rbdBenchOps.FindSubmatch(out)
		if m == nil {
			b.Fatalf("rbd bench said %s", out)
		}
		secs, _ := strconv.ParseFloat(string(m[1]), 64)
		ops, _ := strconv.ParseFloat(string(m[2]), 64)
		return ops / secs
	}
	qemuOps := func(args ...string) float64 {
		argv := append([]string{"bench", "-w", "-t", "none", "-c", strconv.Itoa(benchCount), "-d", strconv.Itoa(benchDepth),
			"-s", strconv.Itoa(benchIOSize)}, args...)
		out, err := exec.CommandContext(ctx, "qemu-img", argv...).CombinedOutput()
		if err != nil {
			b.Fatalf("qemu-img bench: %v: %s", err, out)
		}
		m := qemuBenchS.FindSubmatch(out)
		if m == nil {
			b.Fatalf("qemu-img bench said %s", out)
		}
		secs, _ := strconv.ParseFloat(string(m[1]), 64)
		return benchCount / secs
	}
	// qemu-img bench takes no --object: the same rbd driver reads the
	// backend's ceph.conf and keyring instead of a secret.
	rbdNode, _ := json.Marshal(map[string]string{"driver": "rbd", "pool": c.Pool, "image": imagePrefix + id, "user": c.User, "conf": be.conf})
	vm := []string{"-f", "raw", `json:{"driver":"raw","file":` + string(rbdNode) + `}`}
	// Every path writes the same 32 MiB: write it once first, so that no
	// path pays for creating the RADOS objects.
	hostOps("seq")
	var hostSeq, hostRand, vmSeq, ctSeq float64
	for range b.N {
		hostSeq += hostOps("seq")
		hostRand += hostOps("rand")
		vmSeq += qemuOps(vm...)
		blk, err := be.MapBlock(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		ctSeq += qemuOps("-f", "raw", "-n", blk.Device)
		if err := be.UnmapBlock(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(hostSeq/n, "host-seq-iops")
	b.ReportMetric(hostRand/n, "host-rand-iops")
	b.ReportMetric(vmSeq/n, "qemu-seq-iops")
	b.ReportMetric(ctSeq/n, "container-seq-iops")
	b.ReportMetric(vmSeq/hostSeq, "qemu/host-seq")
	b.ReportMetric(ctSeq/hostSeq, "container/host-seq")
}

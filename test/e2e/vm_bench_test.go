package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// BenchmarkVMCreateToKernel measures, side by side in one run, the time
// from asking for a virtual machine to its guest kernel running (the
// kernel's first line, "Linux version", on the serial console):
//
//   - ouro: the create call through the API of a real server and agent
//     (placement, network ports, overlay, NoCloud seed, QEMU start) until
//     the line is in the instance's serial log;
//   - virsh: `virsh create` of a transient libvirt domain (Debian's
//     libvirt-daemon-system) booting the same kernel and initramfs with
//     the same vCPUs and memory, until the line is in its serial file.
//
// Both poll their log file every 10 ms and run under the same
// accelerator (TCG where KVM does not work). Each iteration boots one of
// each and removes both before the next, so one guest never slows the
// other. It reports p50 and min of each and the ratio of the medians.
//
//	go test ./test/e2e -run '^$' -bench VMCreateToKernel -benchtime 5x
func BenchmarkVMCreateToKernel(b *testing.B) {
	needVM(b)
	ensureLibvirtd(b)
	c := newCloud(b)
	agent := c.addAgent("host-1")
	c.importTiny()
	kernel, initrd := testimage.Tiny(b)
	cl := c.clientAs(c.admin)
	ctx := context.Background()
	flavor := api.Resources{VCPUs: 1, MemoryMiB: 128}

	// libvirt runs QEMU as its own user: give it a directory it can
	// enter and write, and world-readable copies of the boot files.
	lvDir, err := os.MkdirTemp("/var/tmp", "ouro-bench-virsh-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(lvDir) })
	if err := os.Chmod(lvDir, 0o777); err != nil {
		b.Fatal(err)
	}
	lvKernel, lvInitrd := filepath.Join(lvDir, "kernel"), filepath.Join(lvDir, "initrd")
	for src, dst := range map[string]string{kernel: lvKernel, initrd: lvInitrd} {
		data, err := os.ReadFile(src)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}

	var ours, theirs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("vmb-%d", i)
		in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "default"},
			Spec: api.InstanceSpec{Image: "tiny", Flavor: "tiny"}}
		t0 := time.Now()
		if _, err := cl.Create(ctx, in, client.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		serial := filepath.Join(agent.dir, "vms", "instances", in.Metadata.UID, "serial.log")
		ours = append(ours, waitMarker(b, serial, t0))
		if err := cl.Delete(ctx, api.InstanceKind, "default", name); err != nil {
			b.Fatal(err)
		}
		wait.ForDetail(b, 2*time.Minute, name+" deleted", func() (bool, string) {
			_, err := c.instance("default", name)
			return err != nil, fmt.Sprint(err)
		})

		dom := fmt.Sprintf("ouro-bench-%d-%d", os.Getpid(), i)
		lvSerial := filepath.Join(lvDir, dom+".log")
		t0 = time.Now()
		virshCreate(b, dom, lvKernel, lvInitrd, "ouro.test=1 console=ttyS0", lvSerial, int(flavor.MemoryMiB), flavor.VCPUs)
		theirs = append(theirs, waitMarker(b, lvSerial, t0))
		virshDestroy(b, dom)
	}
	b.StopTimer()
	p50o, p50t := median(ours), median(theirs)
	b.ReportMetric(p50o.Seconds(), "ouro-p50-s")
	b.ReportMetric(minOf(ours).Seconds(), "ouro-min-s")
	b.ReportMetric(p50t.Seconds(), "virsh-p50-s")
	b.ReportMetric(minOf(theirs).Seconds(), "virsh-min-s")
	b.ReportMetric(p50o.Seconds()/p50t.Seconds(), "ratio")
}

// waitMarker polls a serial log until the kernel's first line is in it
// and returns the time since t0.
func waitMarker(b *testing.B, path string, t0 time.Time) time.Duration {
	b.Helper()
	deadline := t0.Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if fileContains(path, kernelMarker) {
			return time.Since(t0)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	b.Fatalf("%q not in %s after 3 minutes", kernelMarker, path)
	return 0
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, v := range d[1:] {
		m = min(m, v)
	}
	return m
}

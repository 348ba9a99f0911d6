package container

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

var _ driver.UsageReader = (*Driver)(nil)

// writeCgroupFile writes data at root/rel, making its directories.
func writeCgroupFile(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupCPUTimeLayouts(t *testing.T) {
	const id = "abc"
	tests := []struct {
		name  string
		files map[string]string
		want  time.Duration
		err   bool
	}{
		{"cgroup v2", map[string]string{
			"cgroup.controllers":   "cpu memory pids",
			"ouro/abc/cpu.stat":    "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
			"cpuacct/ouro/abc/cpu": "ignored",
		}, 1500 * time.Millisecond, false},
		{"cgroup v1", map[string]string{
			"cpu,cpuacct/ouro/abc/cpuacct.usage": "2500000000\n",
		}, 2500 * time.Millisecond, false},
		{"hybrid prefers v1 cpuacct", map[string]string{
			"cpuacct/ouro/abc/cpuacct.usage": "42\n",
			"unified/ouro/abc/cpu.stat":      "usage_usec 7\n",
		}, 42, false},
		{"hybrid without v1 cpuacct", map[string]string{
			"unified/ouro/abc/cpu.stat": "usage_usec 7\n",
		}, 7 * time.Microsecond, false},
		{"no cgroup", map[string]string{"cgroup.controllers": "cpu"}, 0, true},
		{"garbage", map[string]string{"cpuacct/ouro/abc/cpuacct.usage": "many\n"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, data := range tt.files {
				writeCgroupFile(t, root, rel, data)
			}
			got, err := cgroupCPUTime(root, id)
			if tt.err {
				if err == nil {
					t.Fatalf("cgroupCPUTime = %s, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("cgroupCPUTime = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// TestCPUTimeOfBusyContainer runs a container that spins and reads its
// CPU time grow.
func TestCPUTimeOfBusyContainer(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{
		ID: id, Name: "spin", Image: busyboxImage(t, blobs),
		Command:   []string{"sh", "-c", "while :; do :; done"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 64},
	})
	t.Cleanup(func() { d.Delete(context.Background(), id) })
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	first, err := d.CPUTime(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var last time.Duration
	wait.For(t, 20*time.Second, "200 ms of CPU used", func() bool {
		last, err = d.CPUTime(ctx, id)
		return err == nil && last-first >= 200*time.Millisecond
	})
	// One vCPU of quota: never more CPU than wall time (with slack for
	// the quota period).
	if used, wall := last-first, time.Since(start); used > wall+100*time.Millisecond {
		t.Errorf("used %s of CPU in %s with one vCPU", used, wall)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CPUTime(ctx, id); err == nil {
		t.Error("CPU time of a deleted container")
	}
}

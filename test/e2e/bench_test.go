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
)

// BenchmarkContainerCreateToRunning measures the time from the create call
// to the agent reporting the container Running, one instance at a time, on
// a real server, agent and runc, with the instances of earlier iterations
// still running. It reports p50 and p90 in milliseconds.
//
// After each instance is Running, the floor: the OCI runtime the driver
// used (crun where it works, else runc), run by hand with `run -d` on a
// bundle prepared as the instance's (runtimeFloor), reported as
// floor-p50-ms and the ratio of the two medians. OURO_BENCH_LOGS names a
// directory that receives the server's and agent's logs (debug level,
// timestamped) to trace where the time goes.
//
//	go test ./test/e2e -run '^$' -bench ContainerCreateToRunning -benchtime 20x
func BenchmarkContainerCreateToRunning(b *testing.B) {
	c := newCloud(b)
	agent := c.addAgent("host-1")
	c.importBusybox()
	cl := c.clientAs(c.admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type started struct{ name, uid string }
	running := make(chan started, 16)
	go client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default", client.WatchOptions{ListOptions: client.ListOptions{LabelSelector: "bench=create"}},
		func(ev api.WatchEvent[api.Instance]) error {
			if ev.Object.Status.Phase == api.PhaseRunning {
				select {
				case running <- started{ev.Object.Metadata.Name, ev.Object.Metadata.UID}:
				default:
				}
			}
			return nil
		})

	var times, floors []time.Duration
	var runtime string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("b-%d", i)
		in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "default", Labels: map[string]string{"bench": "create"}},
			Spec: api.InstanceSpec{Image: "busybox", Flavor: "tiny", Command: []string{"sleep", "3600"}}}
		t0 := time.Now()
		if _, err := cl.Create(ctx, in, client.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(2 * time.Minute)
		var uid string
	wait:
		for {
			select {
			case s := <-running:
				if s.name == name {
					uid = s.uid
					break wait
				}
			case <-deadline:
				b.Fatalf("%s not Running after 2 minutes", name)
			}
		}
		times = append(times, time.Since(t0))
		b.StopTimer()
		floor, rt := runtimeFloor(b, filepath.Join(agent.dir, "containers", "instances", uid), fmt.Sprintf("floor-%d", i))
		floors, runtime = append(floors, floor), rt
		b.StartTimer()
	}
	b.StopTimer()
	if dir := os.Getenv("OURO_BENCH_LOGS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "server.log"), []byte(c.server.out.String()), 0o644)
		os.WriteFile(filepath.Join(dir, "agent.log"), []byte(agent.out.String()), 0o644)
	}
	// Deleting as we go would measure teardown too (a process that ignores
	// SIGTERM holds its grace period); remove them all at the end instead.
	for i := 0; i < b.N; i++ {
		if err := cl.Delete(ctx, api.InstanceKind, "default", fmt.Sprintf("b-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	sort.Slice(floors, func(i, j int) bool { return floors[i] < floors[j] })
	pctOf := func(ds []time.Duration, p float64) float64 {
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	pct := func(p float64) float64 { return pctOf(times, p) }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(pctOf(floors, 0.5), "floor-p50-ms")
	b.ReportMetric(pct(0.5)/pctOf(floors, 0.5), "x-floor")
	b.Logf("runtime %s; floor (%s run -d by hand): p50 %.1f ms", runtime, runtime, pctOf(floors, 0.5))
	b.ReportMetric(float64(times[0].Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

package e2e

import (
	"context"
	"fmt"
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
//	go test ./test/e2e -run '^$' -bench ContainerCreateToRunning -benchtime 20x
func BenchmarkContainerCreateToRunning(b *testing.B) {
	c := newCloud(b)
	c.addAgent("host-1")
	c.importBusybox()
	cl := c.clientAs(c.admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	running := make(chan string, 16)
	go client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default", client.WatchOptions{ListOptions: client.ListOptions{LabelSelector: "bench=create"}},
		func(ev api.WatchEvent[api.Instance]) error {
			if ev.Object.Status.Phase == api.PhaseRunning {
				select {
				case running <- ev.Object.Metadata.Name:
				default:
				}
			}
			return nil
		})

	var times []time.Duration
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
	wait:
		for {
			select {
			case n := <-running:
				if n == name {
					break wait
				}
			case <-deadline:
				b.Fatalf("%s not Running after 2 minutes", name)
			}
		}
		times = append(times, time.Since(t0))
	}
	b.StopTimer()
	// Deleting as we go would measure teardown too (a process that ignores
	// SIGTERM holds its grace period); remove them all at the end instead.
	for i := 0; i < b.N; i++ {
		if err := cl.Delete(ctx, api.InstanceKind, "default", fmt.Sprintf("b-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	pct := func(p float64) float64 {
		return float64(times[int(p*float64(len(times)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(float64(times[0].Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

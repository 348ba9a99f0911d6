package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// pauseDeadline bounds taking the controllers' leadership from the server.
const pauseDeadline = time.Minute

// BenchmarkScheduleBacklog measures the scheduler's own throughput, as
// kube-scheduler's scheduler_perf does: the cloud of BenchmarkScale
// (1,000 hollow hosts), its controllers paused (their leadership taken
// by the benchmark), 10,000 instances created by 32 clients and left
// Pending; then leadership is handed back and the benchmark times the
// server's controllers from that moment until a watch saw every instance
// with status.host. That time holds the new leader's start: its informers'
// full read of 1,000 hosts and 10,000 instances, then the placements. It
// reports
//
//   - placements/s: instances over that time;
//   - first-placement-ms: from the hand-back to the first instance seen
//     placed (the election, the informers' read, the first transaction);
//   - cpu-ms/placement: the process's CPU time over that time, per
//     instance (the hollow hosts start the placed instances meanwhile);
//   - creates/s and cpu-ms/create: the creates alone, with no controller
//     running: the API's create path (admission, IP claims, idempotency
//     record, etcd) and the hollow hosts' heartbeats.
//
// Each iteration builds a fresh cloud; run it with -benchtime 1x.
// BENCH_CPUPROFILE=file profiles the placement phase, and
// BENCH_CREATE_CPUPROFILE=file the create phase.
func BenchmarkScheduleBacklog(b *testing.B) {
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	hosts, instances := envInt(b, "BENCH_HOSTS", defaultHosts), envInt(b, "BENCH_INSTANCES", defaultInstances)
	var placements, first, cpuPlace, creates, cpuCreate float64
	for range b.N {
		r := runBacklog(b, hosts, instances)
		placements += r.placements
		first += r.first
		cpuPlace += r.cpuPerPlacement
		creates += r.creates
		cpuCreate += r.cpuPerCreate
	}
	n := float64(b.N)
	b.ReportMetric(placements/n, "placements/s")
	b.ReportMetric(first/n, "first-placement-ms")
	b.ReportMetric(cpuPlace/n, "cpu-ms/placement")
	b.ReportMetric(creates/n, "creates/s")
	b.ReportMetric(cpuCreate/n, "cpu-ms/create")
}

type backlogResult struct {
	placements, first, cpuPerPlacement float64
	creates, cpuPerCreate              float64
}

// runBacklog builds a cloud, creates the backlog with the controllers
// paused, resumes them and measures. The timer runs only while the
// backlog is placed.
func runBacklog(b *testing.B, hosts, instances int) backlogResult {
	b.StopTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, tr, watchDone := startScaleCloud(ctx, b, hosts, instances)
	resume := c.PauseControllers(b, pauseDeadline)

	var r backlogResult
	stopProfile := startProfile(b, "BENCH_CREATE_CPUPROFILE")
	cpu0 := processCPU(b)
	start := time.Now()
	createDone := create(ctx, b, c.Admin, instances)
	r.creates = float64(instances) / createDone.Sub(start).Seconds()
	r.cpuPerCreate = float64((processCPU(b) - cpu0).Microseconds()) / 1000 / float64(instances)
	stopProfile()
	if n := tr.placedCount(); n != 0 {
		b.Fatalf("%d instances placed while the controllers were paused", n)
	}

	stopProfile = startProfile(b, "BENCH_CPUPROFILE")
	cpu0 = processCPU(b)
	b.StartTimer()
	start = time.Now()
	resume()
	placed := tr.wait(b, tr.allPlaced, watchDone, "every instance placed")
	b.StopTimer()
	r.placements = float64(instances) / placed.Sub(start).Seconds()
	r.first = float64(tr.firstPlaced().Sub(start).Microseconds()) / 1000
	r.cpuPerPlacement = float64((processCPU(b) - cpu0).Microseconds()) / 1000 / float64(instances)
	stopProfile()
	b.Logf("%d hosts, %d instances: %.0f creates/s (%.2f CPU-ms a create, controllers paused); backlog: first placed after %.0f ms, %.0f placements/s, %.2f CPU-ms a placement",
		hosts, instances, r.creates, r.cpuPerCreate, r.first, r.placements, r.cpuPerPlacement)
	return r
}

package e2e

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// Pacing of BenchmarkAPIVIPFailover.
const (
	// vipKillsDefault is how many times each iteration kills the holder;
	// OURO_VIP_KILLS overrides it.
	vipKillsDefault = 5
	// vipProbeTimeout bounds one request through the VIP, vipProbePause
	// separates a failed one from the next.
	vipProbeTimeout = 300 * time.Millisecond
	vipProbePause   = 20 * time.Millisecond
)

// BenchmarkAPIVIPFailover measures how long the API is unreachable
// through its VIP after the server holding the VIP is killed. Each
// iteration builds a control plane of three servers in their own network
// namespaces (the second and third joined with `ouro server --join`),
// then several times: waits until all three are ready and one holds the
// VIP, SIGKILLs the holder (its etcd member dies with it), and from that
// moment sends one request at a time through the VIP, each on a new
// connection from a client namespace, until one is answered; then starts
// the killed server again. It reports, over every kill, the p50 and the
// maximum in seconds from the kill to the first answer.
//
//	go test ./test/e2e -run '^$' -bench APIVIPFailover -benchtime 1x
func BenchmarkAPIVIPFailover(b *testing.B) {
	kills := vipKillsDefault
	if v, err := strconv.Atoi(os.Getenv("OURO_VIP_KILLS")); err == nil && v > 0 {
		kills = v
	}
	var times []time.Duration
	for range b.N {
		b.StopTimer()
		times = append(times, runVIPFailovers(b, kills)...)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(times[len(times)/2].Seconds(), "p50-s")
	b.ReportMetric(times[len(times)-1].Seconds(), "max-s")
	b.ReportMetric(times[0].Seconds(), "min-s")
}

// runVIPFailovers builds a cloud and kills its VIP holder kills times.
func runVIPFailovers(b *testing.B, kills int) []time.Duration {
	b.Helper()
	vc := newVIPCloud(b, 3)
	probe := vc.vipProbe(vipProbeTimeout)
	var out []time.Duration
	marks := map[*vipServer]int{}
	for k := range kills {
		vc.waitServers(3)
		dead := vc.holder()
		for _, s := range vc.servers {
			marks[s] = len(s.proc.out.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), failoverDeadline)
		b.StartTimer()
		start := time.Now()
		dead.proc.cmd.Process.Signal(os.Kill)
		attempts, last := 0, error(nil)
		for {
			attempts++
			if last = probe(ctx); last == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(vipProbePause)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		<-dead.proc.done
		if last != nil {
			b.Fatalf("kill %d of %s: no answer through the VIP within %v: %v", k+1, dead.name, failoverDeadline, last)
		}
		b.Logf("kill %d at %s: %s held the VIP; the API answered through it after %v (%d requests)",
			k+1, start.UTC().Format("15:04:05.000"), dead.name, took.Round(time.Millisecond), attempts)
		out = append(out, took)
		for _, s := range vc.servers {
			for _, line := range strings.Split(s.proc.out.String()[marks[s]:], "\n") {
				if strings.Contains(line, "apivip") || strings.Contains(line, "WARN") && !strings.Contains(line, "watch ended") {
					b.Logf("  %s: %s", s.name, tail(line, 300))
				}
			}
		}
		// Its presence outlives the kill by up to 5 s: wait until the new
		// process serves before the list's word is taken.
		vc.startServer(dead)
		wait.ForDetail(b, 90*time.Second, dead.name+" started again", func() (bool, string) {
			if dead.proc.exited() {
				b.Fatalf("%s exited:\n%s", dead.name, tail(dead.proc.out.String(), 4000))
			}
			return strings.Contains(dead.proc.out.String(), "API server listening"), "not listening yet"
		})
	}
	return out
}

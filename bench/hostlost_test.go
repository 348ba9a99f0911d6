package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
)

// Load of BenchmarkHostLostFalse: BENCH_FP_DURATION (a Go duration,
// default 10m) is how long the loaded cloud is watched, BENCH_HOSTS the
// hollow hosts (default 1,000), BENCH_FP_INSTANCES the instances kept
// alive (default 5,000, created and then replaced one by one).
const (
	defaultFPDuration  = 10 * time.Minute
	defaultFPInstances = 5000
	// fpListers run full lists of the instances (table view) back to
	// back, as busy CLIs and consoles would.
	fpListers = 2
)

// BenchmarkHostLostFalse counts false "host lost" verdicts: hosts of a
// live hollow process (every one of them heartbeats all along) that the
// control plane turned NotReady while it was loaded. A real server
// (embedded etcd, API, controllers) and 1,000 hollow hosts run in this
// process; once every host is Ready, 32 clients create instances up to
// BENCH_FP_INSTANCES and then keep deleting the oldest and creating new
// ones, while fpListers clients list every instance back to back and the
// hollow hosts report their instances' phases. A watch of the hosts
// counts every change of a host to NotReady for BENCH_FP_DURATION. It
// reports
//
//   - false-lost: those changes (every host is alive);
//   - false-lost/h: the same per hour of the run;
//   - creates/s, lists/s: the load the control plane carried meanwhile.
//
// Run it with -benchtime 1x.
func BenchmarkHostLostFalse(b *testing.B) {
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	hosts := envInt(b, "BENCH_HOSTS", defaultHosts)
	live := envInt(b, "BENCH_FP_INSTANCES", defaultFPInstances)
	d := defaultFPDuration
	if v := os.Getenv("BENCH_FP_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			b.Fatalf("BENCH_FP_DURATION=%q: want a positive duration", v)
		}
	}
	var lost, creates, lists float64
	for range b.N {
		r := runHostLostFalse(b, hosts, live, d)
		lost += float64(r.lost)
		creates += r.creates
		lists += r.lists
	}
	n := float64(b.N)
	b.ReportMetric(lost/n, "false-lost")
	b.ReportMetric(lost/n/d.Hours(), "false-lost/h")
	b.ReportMetric(creates/n, "creates/s")
	b.ReportMetric(lists/n, "lists/s")
}

type hostLostResult struct {
	lost           int
	creates, lists float64
}

func runHostLostFalse(b *testing.B, hosts, live int, d time.Duration) hostLostResult {
	b.StopTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := hollowtest.Start(b)
	h := c.RunHollow(b, hollow.Config{Count: hosts, Capacity: hostCapacity})
	c.WaitHostsReady(b, h, hollow.DefaultNamePrefix, hosts, scaleDeadline)
	net := &api.Network{Metadata: api.ObjectMeta{Name: scaleNetwork, Project: hollowtest.Project},
		Spec: api.NetworkSpec{CIDR: "10.128.0.0/16"}}
	if _, err := c.Admin.Create(ctx, net, client.CreateOptions{}); err != nil {
		b.Fatalf("create network %s: %v", scaleNetwork, err)
	}

	hw := &hostWatch{phase: map[string]api.HostPhase{}}
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- client.Watch(ctx, c.Admin, api.HostKind, "", client.WatchOptions{
			ListOptions: client.ListOptions{LabelSelector: api.LabelHollow + "=true"}}, hw.see)
	}()

	loadCtx, stopLoad := context.WithTimeout(ctx, d)
	defer stopLoad()
	b.StartTimer()
	start := time.Now()
	var created, listed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, createWorkers+fpListers)
	var next atomic.Int64
	for range createWorkers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				i := int(next.Add(1)) - 1
				if old := i - live; old >= 0 {
					err := c.Admin.Delete(loadCtx, api.InstanceKind, hollowtest.Project, fmt.Sprintf("fp-%06d", old))
					if err != nil && !api.IsNotFound(err) && loadCtx.Err() == nil {
						errs <- fmt.Errorf("delete fp-%06d: %w", old, err)
						return
					}
				}
				in := &api.Instance{
					Metadata: api.ObjectMeta{Name: fmt.Sprintf("fp-%06d", i), Project: hollowtest.Project,
						Labels: map[string]string{"bench": "fp"}},
					Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny",
						Tolerations: []string{api.TaintHollow},
						Networks:    []api.NetworkAttachment{{Network: scaleNetwork}}},
				}
				if err := createRetrying(loadCtx, c.Admin, in); err != nil {
					if loadCtx.Err() == nil {
						errs <- fmt.Errorf("create %s: %w", in.Metadata.Name, err)
					}
					return
				}
				created.Add(1)
			}
		})
	}
	l := newLister(b, c)
	for range fpListers {
		wg.Go(func() {
			q := url.Values{"view": {api.ViewTable}, "labelSelector": {"bench=fp"}}
			for loadCtx.Err() == nil {
				if err := l.listOnce(loadCtx, q); err != nil {
					if loadCtx.Err() == nil {
						errs <- err
					}
					return
				}
				listed.Add(1)
			}
		})
	}
	progress := time.NewTicker(time.Minute)
	defer progress.Stop()
wait:
	for {
		select {
		case <-loadCtx.Done():
			break wait
		case err := <-watchDone:
			b.Fatalf("host watch ended: %v", err)
		case err := <-errs:
			b.Fatal(err)
		case <-progress.C:
			// Printed as it comes: go test keeps only the first lines of
			// a benchmark's log.
			fmt.Fprintf(os.Stderr, "host-lost bench: %v: %d creates, %d lists, %d hosts turned NotReady; heartbeats (server): %s\n",
				time.Since(start).Round(time.Second), created.Load(), listed.Load(), hw.lostCount(), l.heartbeats(ctx))
		}
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
	}
	if exited, err := h.Exited(); exited {
		b.Fatalf("the hollow hosts stopped during the run: %v", err)
	}
	r := hostLostResult{lost: hw.lostCount(),
		creates: float64(created.Load()) / elapsed.Seconds(), lists: float64(listed.Load()) / elapsed.Seconds()}
	lostLog := hw.lostLog()
	for _, t := range lostLog[:min(len(lostLog), 20)] {
		fmt.Fprintf(os.Stderr, "host-lost bench: false host lost: %s\n", t)
	}
	b.Logf("%d hosts, %d live instances, %v: %d false host-lost verdicts; %.1f creates/s, %.2f lists/s; heartbeats (server): %s",
		hosts, live, elapsed.Round(time.Second), r.lost, r.creates, r.lists, l.heartbeats(ctx))
	return r
}

// hostWatch counts the changes of hosts to NotReady seen by a watch.
type hostWatch struct {
	mu    sync.Mutex
	phase map[string]api.HostPhase
	lost  []string
}

func (w *hostWatch) see(ev api.WatchEvent[api.Host]) error {
	if ev.Type == api.Bookmark {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	name := ev.Object.Metadata.Name
	ph := ev.Object.Status.Phase
	if old, seen := w.phase[name]; ph == api.HostNotReady && (!seen || old != api.HostNotReady) {
		w.lost = append(w.lost, fmt.Sprintf("%s at %s", name, time.Now().UTC().Format("15:04:05.000")))
	}
	w.phase[name] = ph
	return nil
}

func (w *hostWatch) lostCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lost)
}

func (w *hostWatch) lostLog() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lost...)
}

// listOnce lists with query q once and reads the whole answer.
func (l *lister) listOnce(ctx context.Context, q url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.hc.Do(req)
	if err != nil {
		return fmt.Errorf("list %v: %w", q, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("list %v: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("list %v: %s", q, resp.Status)
	}
	return nil
}

// heartbeatRoute is the heartbeat's route in the server's metrics.
const heartbeatRoute = `route="POST /v1/hosts/{name}/heartbeat"`

// heartbeats summarises the server's latency histogram of heartbeats
// (from the handler's start to its answer): how many, their mean, and how
// many took longer than 1 s and 2.5 s.
func (l *lister) heartbeats(ctx context.Context) string {
	u, err := url.Parse(l.url)
	if err != nil {
		return err.Error()
	}
	u.Path = "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.hc.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var count, sum, le1, le25 float64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, heartbeatRoute) {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		_, val, _ := strings.Cut(rest, "} ")
		v, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
		switch {
		case name == "ouro_apiserver_request_duration_seconds_count":
			count = v
		case name == "ouro_apiserver_request_duration_seconds_sum":
			sum = v
		case strings.Contains(rest, `le="1"`):
			le1 = v
		case strings.Contains(rest, `le="2.5"`):
			le25 = v
		}
	}
	if count == 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f, mean %.1f ms, %.0f over 1 s, %.0f over 2.5 s", count, sum/count*1000, count-le1, count-le25)
}

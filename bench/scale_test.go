package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
)

// Scale of BenchmarkScale; BENCH_HOSTS and BENCH_INSTANCES override them
// for a quick look.
const (
	defaultHosts     = 1000
	defaultInstances = 10000
	// scaleNetwork is the /16 the instances of the run attach to.
	scaleNetwork = "scale"
	// createWorkers bounds the creates in flight, as a busy client would.
	createWorkers = 32
	// selectedEvery: one instance in selectedEvery carries sel=yes, for the
	// label-selected list.
	selectedEvery = 100
	// Samples of the list latencies.
	fullLists     = 50
	selectedLists = 200
	// scaleDeadline bounds each phase; a run that needs longer is broken.
	scaleDeadline = 20 * time.Minute
)

// hostCapacity fits ten tiny instances on each hollow host and then some.
var hostCapacity = api.Resources{VCPUs: 32, MemoryMiB: 64 * 1024, DiskGiB: 1000}

// BenchmarkScale measures the control plane with 1,000 hollow hosts: a
// real server (embedded etcd, API, controllers) in this process, hollow
// hosts that join, heartbeat and watch through the API as real agents
// do, and 10,000 instances tolerating the hollow taint created through
// the API by 32 concurrent clients. It reports
//
//   - creates/s: instances created per second of the create phase;
//   - placements/s: instances per second from the first create until a
//     watch saw every instance with status.host;
//   - cpu-ms/placement: the CPU time of the process (server, hollow hosts
//     and clients) over that time, per instance;
//   - running/s: the same until every instance was reported Running;
//   - list-p50-ms, list-p99-ms: a full list of the 10,000 instances as
//     the CLI does it (one request, no limit, the table view), decoded
//     into []api.Instance; list-server-* is the part from the request to
//     the answer's last byte, list-decode-* the client's decode;
//   - full-list-*: the same of whole objects (no view), as -o json, the
//     client package's callers and agents list;
//   - sel-list-p50-ms, sel-list-p99-ms: a list (table view) selecting the
//     1% of instances labelled sel=yes.
//
// Each iteration builds a fresh cloud; run it with -benchtime 1x.
// BENCH_PLACE_ONLY=1 stops each run once every instance is placed,
// BENCH_CPUPROFILE=file profiles the create and placement phase and
// BENCH_LIST_CPUPROFILE=file the lists.
func BenchmarkScale(b *testing.B) {
	// go test prints what the process logs among its results: a log line
	// (the election's) landing inside a result line would lose the run.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	hosts, instances := envInt(b, "BENCH_HOSTS", defaultHosts), envInt(b, "BENCH_INSTANCES", defaultInstances)
	var sum scaleResult
	for range b.N {
		r := runScale(b, hosts, instances)
		sum.add(r)
	}
	n := float64(b.N)
	b.ReportMetric(sum.creates/n, "creates/s")
	b.ReportMetric(sum.placements/n, "placements/s")
	b.ReportMetric(sum.cpuPerPlacement/n, "cpu-ms/placement")
	b.ReportMetric(sum.running/n, "running/s")
	b.ReportMetric(sum.listP50/n, "list-p50-ms")
	b.ReportMetric(sum.listP99/n, "list-p99-ms")
	b.ReportMetric(sum.selP50/n, "sel-list-p50-ms")
	b.ReportMetric(sum.selP99/n, "sel-list-p99-ms")
	b.ReportMetric(sum.listServerP50/n, "list-server-p50-ms")
	b.ReportMetric(sum.listServerP99/n, "list-server-p99-ms")
	b.ReportMetric(sum.listDecodeP50/n, "list-decode-p50-ms")
	b.ReportMetric(sum.listDecodeP99/n, "list-decode-p99-ms")
	b.ReportMetric(sum.fullP50/n, "full-list-p50-ms")
	b.ReportMetric(sum.fullP99/n, "full-list-p99-ms")
	b.ReportMetric(sum.fullServerP50/n, "full-list-server-p50-ms")
	b.ReportMetric(sum.fullServerP99/n, "full-list-server-p99-ms")
	b.ReportMetric(sum.fullDecodeP50/n, "full-list-decode-p50-ms")
	b.ReportMetric(sum.fullDecodeP99/n, "full-list-decode-p99-ms")
}

type scaleResult struct {
	creates, placements, running     float64
	cpuPerPlacement                  float64
	listP50, listP99, selP50, selP99 float64
	listServerP50, listServerP99     float64
	listDecodeP50, listDecodeP99     float64
	fullP50, fullP99                 float64
	fullServerP50, fullServerP99     float64
	fullDecodeP50, fullDecodeP99     float64
}

func (s *scaleResult) add(o scaleResult) {
	s.creates += o.creates
	s.cpuPerPlacement += o.cpuPerPlacement
	s.placements += o.placements
	s.running += o.running
	s.listP50 += o.listP50
	s.listP99 += o.listP99
	s.selP50 += o.selP50
	s.selP99 += o.selP99
	s.listServerP50 += o.listServerP50
	s.listServerP99 += o.listServerP99
	s.listDecodeP50 += o.listDecodeP50
	s.listDecodeP99 += o.listDecodeP99
	s.fullP50 += o.fullP50
	s.fullP99 += o.fullP99
	s.fullServerP50 += o.fullServerP50
	s.fullServerP99 += o.fullServerP99
	s.fullDecodeP50 += o.fullDecodeP50
	s.fullDecodeP99 += o.fullDecodeP99
}

// add appends o's samples to t's.
func (t *listTimes) add(o listTimes) {
	t.total = append(t.total, o.total...)
	t.server = append(t.server, o.server...)
	t.decode = append(t.decode, o.decode...)
	t.firstByte = append(t.firstByte, o.firstByte...)
	t.bytes = o.bytes
}

// startProfile writes a CPU profile to the file the environment variable
// env names, if set: BENCH_CPUPROFILE profiles the create and placement
// phase, BENCH_LIST_CPUPROFILE the lists (go test's -cpuprofile would
// also profile the start of 1,000 hosts); the returned function stops it.
func startProfile(b *testing.B, env string) func() {
	b.Helper()
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}
}

// processCPU returns the CPU time (user and system) this process used so
// far: the whole cloud runs in it, so the CPU a placement costs reads
// the same on a busy machine, where the rates do not.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// startScaleCloud starts the server and hosts hollow hosts, waits until
// they are Ready, makes the network the instances go on (the default one,
// a /20, holds 4,093 instances) and starts a tracker of the instances
// labelled bench=scale; the watch's end is sent on the channel.
func startScaleCloud(ctx context.Context, b *testing.B, hosts, instances int) (*hollowtest.Cloud, *tracker, chan error) {
	b.Helper()
	c := hollowtest.Start(b)
	h := c.RunHollow(b, hollow.Config{Count: hosts, Capacity: hostCapacity})
	c.WaitHostsReady(b, h, hollow.DefaultNamePrefix, hosts, scaleDeadline)
	net := &api.Network{Metadata: api.ObjectMeta{Name: scaleNetwork, Project: hollowtest.Project},
		Spec: api.NetworkSpec{CIDR: "10.128.0.0/16"}}
	if _, err := c.Admin.Create(ctx, net, client.CreateOptions{}); err != nil {
		b.Fatalf("create network %s: %v", scaleNetwork, err)
	}
	tr := newTracker(instances)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- client.Watch(ctx, c.Admin, api.InstanceKind, hollowtest.Project, client.WatchOptions{
			ListOptions: client.ListOptions{LabelSelector: "bench=scale"}}, tr.see)
	}()
	return c, tr, watchDone
}

// runScale builds a cloud with hosts hollow hosts, creates instances and
// measures. The timer runs only while instances are created and placed.
func runScale(b *testing.B, hosts, instances int) scaleResult {
	b.StopTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, tr, watchDone := startScaleCloud(ctx, b, hosts, instances)

	stopProfile := startProfile(b, "BENCH_CPUPROFILE")
	cpu0 := processCPU(b)
	b.StartTimer()
	start := time.Now()
	createDone := create(ctx, b, c.Admin, instances)
	var r scaleResult
	r.creates = float64(instances) / createDone.Sub(start).Seconds()
	placed := tr.wait(b, tr.allPlaced, watchDone, "every instance placed")
	r.placements = float64(instances) / placed.Sub(start).Seconds()
	b.StopTimer()
	r.cpuPerPlacement = float64((processCPU(b) - cpu0).Microseconds()) / 1000 / float64(instances)
	stopProfile()
	if os.Getenv("BENCH_PLACE_ONLY") != "" {
		b.Logf("%d hosts, %d instances: %.0f creates/s, %.0f placements/s, %.2f CPU-ms a placement", hosts, instances, r.creates, r.placements, r.cpuPerPlacement)
		return r
	}
	running := tr.wait(b, tr.allRunning, watchDone, "every instance Running")
	r.running = float64(instances) / running.Sub(start).Seconds()

	measureLists(ctx, b, c, instances, &r)
	b.Logf("%d hosts, %d instances: %.0f creates/s, %.0f placements/s, %.0f running/s",
		hosts, instances, r.creates, r.placements, r.running)
	return r
}

// measureLists times the lists of the cloud's instances into r and logs
// them.
func measureLists(ctx context.Context, b *testing.B, c *hollowtest.Cloud, instances int, r *scaleResult) {
	b.Helper()
	defer startProfile(b, "BENCH_LIST_CPUPROFILE")()
	l := newLister(b, c)
	// The CLI's list (ouro instance list): the table view. The two kinds
	// of full list alternate, so that the machine's load falls on both.
	var table, full listTimes
	for range fullLists / 5 {
		tt := l.list(ctx, b, 5, url.Values{"view": {api.ViewTable}}, instances)
		ft := l.list(ctx, b, 5, url.Values{}, instances)
		table.add(tt)
		full.add(ft)
	}
	sel := l.list(ctx, b, selectedLists, url.Values{"labelSelector": {"sel=yes"}, "view": {api.ViewTable}},
		(instances+selectedEvery-1)/selectedEvery)
	r.listP50, r.listP99 = p(table.total)
	r.listServerP50, r.listServerP99 = p(table.server)
	r.listDecodeP50, r.listDecodeP99 = p(table.decode)
	r.fullP50, r.fullP99 = p(full.total)
	r.fullServerP50, r.fullServerP99 = p(full.server)
	r.fullDecodeP50, r.fullDecodeP99 = p(full.decode)
	r.selP50, r.selP99 = p(sel.total)
	logTimes(b, "list, table view (the CLI's)", table)
	logTimes(b, "list, whole objects", full)
	logTimes(b, "label-selected list, table view", sel)
}

// create makes n tiny instances tolerating the hollow taint with
// createWorkers clients at a time and returns when the last create was
// answered.
func create(ctx context.Context, b *testing.B, cl *client.Client, n int) time.Time {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, createWorkers)
	for range createWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("i-%05d", i)
				labels := map[string]string{"bench": "scale"}
				if i%selectedEvery == 0 {
					labels["sel"] = "yes"
				}
				in := &api.Instance{
					Metadata: api.ObjectMeta{Name: name, Project: hollowtest.Project, Labels: labels},
					Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny",
						Tolerations: []string{api.TaintHollow},
						Networks:    []api.NetworkAttachment{{Network: scaleNetwork}}},
				}
				if err := createRetrying(ctx, cl, in); err != nil {
					errs <- fmt.Errorf("create %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return time.Now()
}

// createRetrying creates in, retrying as a careful client would when the
// server asks it to (conflicts, 429 and 5xx answers); the idempotency key
// makes a retried create safe.
func createRetrying(ctx context.Context, cl *client.Client, in *api.Instance) error {
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		obj := *in
		_, err := cl.Create(ctx, &obj, client.CreateOptions{IdempotencyKey: "bench-" + in.Metadata.Name})
		st := api.StatusOf(err)
		if err == nil || attempt >= 20 || !(api.IsConflict(err) || st == http.StatusTooManyRequests || st >= 500) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// tracker follows the benchmark's instances through a watch and notes
// when all of them were placed and all were Running.
type tracker struct {
	n          int
	mu         sync.Mutex
	placed     map[string]bool
	running    map[string]bool
	first      time.Time // the first instance seen placed
	allPlaced  chan time.Time
	allRunning chan time.Time
}

func newTracker(n int) *tracker {
	return &tracker{n: n, placed: map[string]bool{}, running: map[string]bool{},
		allPlaced: make(chan time.Time, 1), allRunning: make(chan time.Time, 1)}
}

func (t *tracker) see(ev api.WatchEvent[api.Instance]) error {
	if ev.Type != api.Added && ev.Type != api.Modified {
		return nil
	}
	now := time.Now()
	in := &ev.Object
	t.mu.Lock()
	defer t.mu.Unlock()
	mark := func(set map[string]bool, done chan time.Time) {
		if set[in.Metadata.Name] {
			return
		}
		set[in.Metadata.Name] = true
		if len(set) == t.n {
			done <- now
		}
	}
	if in.Status.Host != "" {
		if t.first.IsZero() {
			t.first = now
		}
		mark(t.placed, t.allPlaced)
	}
	if in.Status.Phase == api.PhaseRunning {
		mark(t.running, t.allRunning)
	}
	return nil
}

// placedCount returns how many instances were seen placed.
func (t *tracker) placedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.placed)
}

// firstPlaced returns when the first instance was seen placed.
func (t *tracker) firstPlaced() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

// wait returns the time sent on ch, failing the benchmark if the watch
// ends or the deadline passes first.
func (t *tracker) wait(b *testing.B, ch chan time.Time, watchDone chan error, what string) time.Time {
	b.Helper()
	deadline := time.NewTimer(scaleDeadline)
	defer deadline.Stop()
	select {
	case at := <-ch:
		return at
	case err := <-watchDone:
		b.Fatalf("waiting for %s: the watch ended: %v", what, err)
	case <-deadline.C:
		t.mu.Lock()
		defer t.mu.Unlock()
		b.Fatalf("waiting for %s: %d placed, %d Running of %d after %v", what, len(t.placed), len(t.running), t.n, scaleDeadline)
	}
	return time.Time{}
}

// listTimes are the samples of one kind of list: the whole of each
// (total), the server's part (request sent → last byte of the answer
// read, over loopback TLS and HTTP/2 as the client package speaks it) and
// the client's decode of the answer into []api.Instance; the time to the
// first byte is logged.
type listTimes struct {
	total, server, decode, firstByte []time.Duration
	bytes                            int
}

// p returns the p50 and p99 of samples in milliseconds.
func p(samples []time.Duration) (p50, p99 float64) {
	return percentile(samples, 0.50), percentile(samples, 0.99)
}

// lister lists instances as the client package does (same transport
// settings, token and JSON decode), timing the parts apart.
type lister struct {
	url, token string
	hc         *http.Client
}

func newLister(b *testing.B, c *hollowtest.Cloud) *lister {
	b.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CACert) {
		b.Fatal("the cloud's CA certificate holds no PEM certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	return &lister{url: c.URL + client.Path(api.InstanceKind, hollowtest.Project, ""), token: c.AdminToken,
		hc: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// list lists samples times with query q, checking each answer holds want
// instances.
func (l *lister) list(ctx context.Context, b *testing.B, samples int, q url.Values, want int) listTimes {
	b.Helper()
	var t listTimes
	for range samples {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url+"?"+q.Encode(), nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+l.token)
		var first time.Time
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotFirstResponseByte: func() { first = time.Now() }}))
		t0 := time.Now()
		resp, err := l.hc.Do(req)
		if err != nil {
			b.Fatalf("list %v: %v", q, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("list %v: %s %v: %.200s", q, resp.Status, err, data)
		}
		t1 := time.Now()
		var list api.List[api.Instance]
		if err := json.Unmarshal(data, &list); err != nil {
			b.Fatalf("list %v: decode: %v", q, err)
		}
		t2 := time.Now()
		if len(list.Items) != want {
			b.Fatalf("list %v: %d instances, want %d", q, len(list.Items), want)
		}
		t.total = append(t.total, t2.Sub(t0))
		t.server = append(t.server, t1.Sub(t0))
		t.decode = append(t.decode, t2.Sub(t1))
		t.firstByte = append(t.firstByte, first.Sub(t0))
		t.bytes = len(data)
	}
	return t
}

// logTimes logs the percentiles of t.
func logTimes(b *testing.B, what string, t listTimes) {
	b.Helper()
	tot50, tot99 := p(t.total)
	srv50, srv99 := p(t.server)
	dec50, dec99 := p(t.decode)
	fb50, fb99 := p(t.firstByte)
	b.Logf("%s (%d KB): total p50 %.1f p99 %.1f ms; server (to last byte) p50 %.1f p99 %.1f ms, of which to first byte p50 %.1f p99 %.1f ms; client decode p50 %.1f p99 %.1f ms",
		what, t.bytes/1000, tot50, tot99, srv50, srv99, fb50, fb99, dec50, dec99)
}

// percentile returns the p-th percentile (nearest rank) of times in
// milliseconds.
func percentile(times []time.Duration, p float64) float64 {
	s := slices.Clone(times)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

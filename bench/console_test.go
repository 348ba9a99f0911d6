package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/browsertest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// consoleChanges is how many API changes the latency is sampled over.
const consoleChanges = 50

// paintJS runs in every document of the measured page before its own
// scripts: it notes, in milliseconds since the navigation started, the
// animation frame in which the map first shows a host panel, and the one
// in which it shows every host's panel and every instance's tile (the
// counts come from window.__want). It also notes, for each instance
// tile that appears, the wall-clock time (Date.now) it appeared at.
const paintJS = `(() => {
	window.__paint = {};
	window.__seen = {};
	window.__long = [];
	try {
		new PerformanceObserver(l => { for (const e of l.getEntries()) window.__long.push(Math.round(e.startTime) + '+' + Math.round(e.duration)); })
			.observe({type: 'longtask', buffered: true});
	} catch (e) {}
	const check = () => {
		const want = window.__want || {hosts: 1e9, tiles: 1e9};
		const panels = document.querySelectorAll('main section.host:not(.pending-panel)').length;
		const tiles = document.querySelectorAll('main a.tile').length;
		if (panels > 0 && !window.__paint.first) {
			requestAnimationFrame(t => { window.__paint.first = window.__paint.first || t; });
		}
		if (panels >= want.hosts && tiles >= want.tiles && !window.__paint.full) {
			requestAnimationFrame(t => { window.__paint.full = window.__paint.full || t; });
		}
	};
	const seen = muts => {
		const now = Date.now();
		for (const m of muts) for (const n of m.addedNodes) {
			if (n.nodeType !== 1) continue;
			const tiles = n.matches('a.tile') ? [n] : n.querySelectorAll('a.tile');
			for (const el of tiles) {
				const name = decodeURIComponent((el.getAttribute('href') || '').replace(/^#\/instances\//, ''));
				if (!(name in window.__seen)) window.__seen[name] = now;
			}
		}
	};
	new MutationObserver(muts => { seen(muts); check(); })
		.observe(document, {childList: true, subtree: true});
})()`

// BenchmarkConsoleMap measures the web console in headless Chromium
// against the cloud of BenchmarkScale (a real server in this process,
// 1,000 hollow hosts, 10,000 instances; BENCH_HOSTS and BENCH_INSTANCES
// override them). It reports
//
//   - first-panel-ms: a cold load of #/map by a signed-in user (no
//     cache), from the navigation's start to the animation frame that
//     first shows a host panel;
//   - fmp-ms: the same until the frame that shows every host's panel and
//     every instance's tile (the map's first meaningful paint);
//   - change-p50-ms, change-p95-ms: an instance created through the API
//     until its tile appears on the open map, over 50 creates;
//   - assets-KB: what the console's own files (everything but /v1) cost
//     on the wire in that load, headers and gzip bodies;
//   - all-assets-gzip-KB: the gzip bodies of every file of console/web
//     (vendor included when built), fetched one by one with
//     Accept-Encoding: gzip: all the console can ever load;
//   - api-KB: the /v1 answers of that load (the session and the lists).
//
// With BENCH_CONSOLE_LISTS set it also logs the list figures of
// BenchmarkScale, taken in the same cloud once the map is measured.
//
// Each iteration builds a fresh cloud; run it with -benchtime 1x.
func BenchmarkConsoleMap(b *testing.B) {
	browsertest.NeedChromium(b)
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	hosts, instances := envInt(b, "BENCH_HOSTS", defaultHosts), envInt(b, "BENCH_INSTANCES", defaultInstances)
	var sum consoleResult
	for range b.N {
		sum.add(runConsole(b, hosts, instances))
	}
	n := float64(b.N)
	b.ReportMetric(sum.firstPanel/n, "first-panel-ms")
	b.ReportMetric(sum.fmp/n, "fmp-ms")
	b.ReportMetric(sum.changeP50/n, "change-p50-ms")
	b.ReportMetric(sum.changeP95/n, "change-p95-ms")
	b.ReportMetric(sum.assets/n, "assets-KB")
	b.ReportMetric(sum.allAssets/n, "all-assets-gzip-KB")
	b.ReportMetric(sum.api/n, "api-KB")
}

type consoleResult struct {
	firstPanel, fmp, changeP50, changeP95, assets, allAssets, api float64
}

func (s *consoleResult) add(o consoleResult) {
	s.firstPanel += o.firstPanel
	s.fmp += o.fmp
	s.changeP50 += o.changeP50
	s.changeP95 += o.changeP95
	s.assets += o.assets
	s.allAssets += o.allAssets
	s.api += o.api
}

// runConsole builds the cloud, opens the map and measures.
func runConsole(b *testing.B, hosts, instances int) consoleResult {
	b.StopTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, tr, watchDone := startScaleCloud(ctx, b, hosts, instances)
	create(ctx, b, c.Admin, instances)
	tr.wait(b, tr.allRunning, watchDone, "every instance Running")
	who, err := c.Admin.Whoami(ctx)
	if err != nil {
		b.Fatal(err)
	}

	var r consoleResult
	br := browsertest.Start(b, browsertest.Config{URL: c.URL, CACert: c.CACert})
	p := br.NewPage(b)
	p.SignInToken(who.User, c.AdminToken)
	p.Eval(fmt.Sprintf(`localStorage.setItem('ouro.project', %q)`, hollowtest.Project), nil)
	transfers := p.RecordTransfers()
	p.OnNewDocument(paintJS)
	p.OnNewDocument(fmt.Sprintf(`window.__want = {hosts: %d, tiles: %d}`, hosts, instances))
	// From a blank page: the console's own URL with another fragment
	// would not load a new document.
	p.OpenURL("about:blank")
	p.Open("/#/map")
	var paint struct {
		First float64 `json:"first"`
		Full  float64 `json:"full"`
	}
	wait.ForDetail(b, 5*time.Minute, "the map painted", func() (bool, string) {
		var detail string
		p.Eval(`JSON.stringify(window.__paint) + ' panels ' + document.querySelectorAll('main section.host').length +
			' tiles ' + document.querySelectorAll('main a.tile').length`, &detail)
		p.Eval(`window.__paint`, &paint)
		return paint.Full > 0, detail
	})
	r.firstPanel, r.fmp = paint.First, paint.Full
	var timing string
	p.Eval(`performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/'))
		.map(e => new URL(e.name).pathname + ' ' + Math.round(e.startTime) + '→' + Math.round(e.responseEnd) + ' ms').join('; ')`, &timing)
	b.Logf("the map's API requests (ms since navigation): %s; painted at %.0f ms", timing, paint.Full)
	var marks string
	p.Eval(`performance.getEntriesByType('mark').map(e => e.name + ' ' + Math.round(e.startTime)).join('; ') +
		' | long tasks (start+ms): ' + window.__long.join(' ')`, &marks)
	b.Logf("the page's marks (ms since navigation): %s", marks)
	p.Screenshot("console-map-1000-hosts")
	logStates(ctx, b, c.Admin)
	r.assets = float64(transfers.Sum(func(path string) bool { return !strings.HasPrefix(path, "/v1/") })) / 1000
	r.api = float64(transfers.Sum(func(path string) bool { return strings.HasPrefix(path, "/v1/") })) / 1000
	var loaded []string
	for _, t := range transfers.List() {
		loaded = append(loaded, fmt.Sprintf("%s %d B %s", t.Path, t.Bytes, t.Encoding))
	}
	b.Logf("loaded: %s", strings.Join(loaded, "; "))
	r.allAssets = float64(gzipAssets(b, c)) / 1000
	if os.Getenv("BENCH_CONSOLE_LISTS") != "" {
		// The list figures of BenchmarkScale in this cloud (logged), for
		// one run that measures both.
		var lists scaleResult
		measureLists(ctx, b, c, instances, &lists)
	}

	times := make([]time.Duration, 0, consoleChanges)
	for i := range consoleChanges {
		name := fmt.Sprintf("console-%03d", i)
		in := &api.Instance{
			Metadata: api.ObjectMeta{Name: name, Project: hollowtest.Project, Labels: map[string]string{"bench": "console"}},
			Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny",
				Tolerations: []string{api.TaintHollow},
				Networks:    []api.NetworkAttachment{{Network: scaleNetwork}}},
		}
		start := time.Now()
		if err := createRetrying(ctx, c.Admin, in); err != nil {
			b.Fatalf("create %s: %v", name, err)
		}
		var seen int64
		wait.ForDetail(b, time.Minute, name+" on the map", func() (bool, string) {
			p.Eval(fmt.Sprintf(`window.__seen[%q] || 0`, name), &seen)
			return seen > 0, ""
		})
		times = append(times, time.UnixMilli(seen).Sub(start))
	}
	r.changeP50, r.changeP95 = percentile(times, 0.50), percentile(times, 0.95)
	b.Logf("%d hosts, %d instances: first panel %.0f ms, map painted %.0f ms; API change → screen p50 %.0f ms p95 %.0f ms; assets %.1f KB on the wire (all files gzip %.1f KB), API %.1f KB",
		hosts, instances, r.firstPanel, r.fmp, r.changeP50, r.changeP95, r.assets, r.allAssets, r.api)
	return r
}

// gzipAssets fetches every file of console/web through the server with
// Accept-Encoding: gzip and returns the sum of the bodies as sent.
func gzipAssets(b *testing.B, c *hollowtest.Cloud) int64 {
	b.Helper()
	root := filepath.Join("..", "console", "web")
	if _, err := os.Stat(root); err != nil {
		b.Fatalf("console files: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CACert)
	// DisableCompression: the body is counted as sent, not decoded.
	httpc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableCompression: true}}
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		req, _ := http.NewRequest(http.MethodGet, c.URL+"/"+filepath.ToSlash(rel), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			b.Logf("%s: %s (not served)", rel, resp.Status)
			return nil
		}
		total += n
		return nil
	})
	if err != nil {
		b.Fatalf("fetch the console's files: %v", err)
	}
	return total
}

// logStates logs how many instances are in each phase, reason and
// health, which is what the map's tiles show.
func logStates(ctx context.Context, b *testing.B, cl *client.Client) {
	items, _, err := client.ListAll[api.Instance](ctx, cl, api.InstanceKind, hollowtest.Project, client.ListOptions{})
	if err != nil {
		b.Fatalf("list instances: %v", err)
	}
	states := map[string]int{}
	for _, in := range items {
		k := string(in.Status.Phase) + "/" + in.Status.Reason
		for _, c := range in.Status.Conditions {
			if c.Type == "Healthy" && !c.Status {
				k += " unhealthy(" + c.Reason + ")"
			}
		}
		states[k]++
	}
	b.Logf("instances by phase/reason: %v", states)
}

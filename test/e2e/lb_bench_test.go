package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// Pacing of the load balancer benchmarks.
const (
	// lbProbeTimeout bounds one probing request: a request sent while the
	// VIP moves is given up quickly and another sent, as a client with a
	// short connect timeout would.
	lbProbeTimeout = 300 * time.Millisecond
	// lbProbeWorkers send probing requests at once.
	lbProbeWorkers = 4
	// lbThroughputWorkers is the concurrency of the throughput client,
	// lbThroughputRound the length of one round, lbThroughputRounds the
	// rounds of each side (alternating: ouro, plain, ouro, plain, …).
	lbThroughputWorkers = 8
	lbThroughputRound   = 2 * time.Second
	lbThroughputRounds  = 8
)

// durations summarises a benchmark's samples.
type durations []time.Duration

// pct returns the p-th percentile (nearest rank, 0 < p ≤ 1).
func (ds durations) pct(p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// report adds the p50 and max of ds, in seconds, as metrics prefix-p50-s
// and prefix-max-s.
func (ds durations) report(b *testing.B, prefix string) {
	b.ReportMetric(ds.pct(0.5).Seconds(), prefix+"-p50-s")
	b.ReportMetric(ds.pct(1).Seconds(), prefix+"-max-s")
}

// BenchmarkLBFailover measures how long new connections to a load
// balancer's VIP fail after the power of its active host is cut: 3 hosts,
// the load balancer on h1 and h2 (active/standby, keepalived), 2 web
// members and a client on h3. Clients send requests to the VIP all the
// time, each on a new connection given up after 300 ms; each iteration
// cuts the host holding the VIP (SIGKILL to its agent, haproxy and
// keepalived; its switch port down) and measures from the cut until the
// first answer to a request sent after it. The host then returns, and the
// next iteration waits until both hosts serve again. It reports p50 and
// max in seconds as failover-p50-s and failover-max-s.
//
//	go test ./test/e2e -run '^$' -bench LBFailover -benchtime 5x
func BenchmarkLBFailover(b *testing.B) {
	nc, lb, client := newFailoverLB(b)
	load := startLoad(b, client, vipAddr(lb), lbProbeWorkers, lbProbeTimeout)
	var ds durations
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		settleVIP(b, nc, lb, load)
		d, dead := cutActiveLBHost(b, nc, lb, load)
		ds = append(ds, d)
		b.Logf("cut %s: first new connection answered after %v", dead.name, d.Round(time.Millisecond))
		nc.lbPowerBack(dead)
		lb = nc.waitLBActive("", lb.Metadata.Name)
	}
	ds.report(b, "failover")
}

// settleVIP waits until both LB hosts are ready and the VIP stays on one
// host while 100 requests are answered (a returning host of higher
// priority takes the VIP back first).
func settleVIP(b *testing.B, nc *netCloud, lb *api.LoadBalancer, load *loadGen) {
	b.Helper()
	wait.ForDetail(b, 2*time.Minute, "the VIP settled", func() (bool, string) {
		nc.waitLBActive("", lb.Metadata.Name)
		before := nc.vipHolder(lb)
		load.waitAnswersSince(b, time.Now(), 100, 30*time.Second)
		after := nc.vipHolder(lb)
		return before == after, fmt.Sprintf("moved from %s to %s", before.name, after.name)
	})
}

// newLBBench builds a cloud of one host with a group "web" of 3 web
// members and a client instance, and returns it with the client's
// namespace.
func newLBBench(b *testing.B) (*netCloud, string) {
	b.Helper()
	nc := newNetCloud(b, 1)
	nc.killLBLeftovers()
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "3", "--"}, lbWebCommand()...)...)
	nc.waitMembersRunning("web", 3)
	nc.create(vm{name: "client"})
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		b.Fatal(err)
	}
	return nc, client
}

// BenchmarkLBMemberDown measures how long a member whose health check
// fails stays in rotation: one LB host, 3 web members checked with GET
// /healthz (the defaults: every 1 s, down after 2 failures), requests to
// the VIP all the time. Each iteration removes one member's /healthz
// through `ouro instance exec` and measures from the start of the exec
// until the last answer from that member (confirmed by 30 answers in a row from
// the others), then puts the file back and waits until the member answers
// again. It reports p50 and max in seconds as out-p50-s and out-max-s.
//
//	go test ./test/e2e -run '^$' -bench LBMemberDown -benchtime 5x
func BenchmarkLBMemberDown(b *testing.B) {
	nc, client := newLBBench(b)
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--wait")...)
	lb := nc.waitMembersUp("", "web", 60*time.Second, "web-0", "web-1", "web-2")
	load := startLoad(b, client, vipAddr(lb), 2, 2*time.Second)
	var ds durations
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sick := fmt.Sprintf("web-%d", i%3)
		waitAnswersFrom(b, load, time.Now(), sick)
		start := time.Now()
		if out, err := nc.exec("", sick, "rm", "/www/healthz"); err != nil {
			b.Fatalf("rm /www/healthz in %s: %v: %s", sick, err, out)
		}
		execTook := time.Since(start)
		var last time.Time
		wait.ForDetail(b, 30*time.Second, sick+" out of rotation", func() (bool, string) {
			last = start
			after := 0
			for _, a := range load.answersSince(start) {
				if a.body == sick {
					last, after = a.at, 0
				} else {
					after++
				}
			}
			return after >= 30, fmt.Sprintf("%d answers since the last from %s", after, sick)
		})
		d := last.Sub(start)
		ds = append(ds, d)
		b.Logf("%s's health broken (ouro instance exec took %v): last answer from it after %v", sick,
			execTook.Round(time.Millisecond), d.Round(time.Millisecond))
		if out, err := nc.exec("", sick, "sh", "-c", "echo ok > /www/healthz"); err != nil {
			b.Fatalf("restore /www/healthz in %s: %v: %s", sick, err, out)
		}
		waitAnswersFrom(b, load, time.Now(), sick)
	}
	ds.report(b, "out")
	_, fail, errs := load.counts()
	if fail > 0 {
		b.Logf("%d requests failed: %v", fail, errs)
	}
}

// waitAnswersFrom waits until member answered a request sent after t.
func waitAnswersFrom(b *testing.B, load *loadGen, t time.Time, member string) {
	b.Helper()
	wait.ForDetail(b, 60*time.Second, member+" answering", func() (bool, string) {
		got := names(load.answersSince(t))
		return slices.Contains(got, member), fmt.Sprint(got)
	})
}

// BenchmarkLBCreateToServing measures how long a new load balancer takes
// to serve: one host, 3 web members (a group); each iteration creates a
// load balancer of the group through the API (one tcp listener on 80, an
// http check of /healthz) and measures from the create call until a
// request to its VIP from a client on the network is answered by a
// member (requests sent one after another, each given up after 300 ms).
// It then deletes the load balancer and waits until nothing is left of
// it. It reports p50 and max in seconds as serving-p50-s and
// serving-max-s, and logs when the status said Ready: the client's first
// ARP request for the VIP goes out before the VIP exists, and its kernel
// asks again a second later.
//
//	go test ./test/e2e -run '^$' -bench LBCreateToServing -benchtime 5x
func BenchmarkLBCreateToServing(b *testing.B) {
	nc, clientNS := newLBBench(b)
	cl := nc.clientAs(nc.admin)
	hc := httpClientIn(clientNS, lbProbeTimeout)
	ctx := context.Background()
	var ds durations
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("lb-%d", i)
		lb := &api.LoadBalancer{Kind: api.LoadBalancerKind.Name, Metadata: api.ObjectMeta{Name: name, Project: "default"},
			Spec: api.LoadBalancerSpec{Network: "default",
				Listeners: []api.Listener{{Name: "tcp-80", Protocol: api.ListenerTCP, Port: 80, DefaultPool: "default"}},
				Pools: []api.Pool{{Name: "default", Group: "web", Port: lbMemberPort,
					HealthMonitor: api.HealthMonitor{Type: api.MonitorHTTP, Path: "/healthz"}}}}}
		start := time.Now()
		if _, err := cl.Create(ctx, lb, client.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		vip := lb.Status.VIP
		var last error
		wait.ForDetail(b, 60*time.Second, name+" serving", func() (bool, string) {
			if vip == "" {
				cur, err := nc.lbGet("", name)
				if err != nil {
					return false, err.Error()
				}
				vip = cur.Status.VIP
				if vip == "" {
					return false, "no VIP yet"
				}
			}
			body, err := getBody(ctx, hc, net.JoinHostPort(vip, "80"))
			last = err
			return err == nil && strings.HasPrefix(body, "web-"), fmt.Sprintf("%q %v", body, last)
		})
		d := time.Since(start)
		ds = append(ds, d)
		cur, err := nc.lbGet("", name)
		if err != nil {
			b.Fatal(err)
		}
		ready := "not yet"
		if c := api.FindCondition(cur.Status.Conditions, "Ready"); c != nil && c.Status {
			ready = c.LastTransitionTime.Sub(start).Round(time.Millisecond).String()
		}
		b.Logf("%s (VIP %s): serving after %v (status Ready after %s)", name, vip, d.Round(time.Millisecond), ready)
		if err := cl.Delete(ctx, api.LoadBalancerKind, "default", name); err != nil {
			b.Fatal(err)
		}
		wait.ForDetail(b, 60*time.Second, name+" gone", func() (bool, string) {
			_, err := nc.lbGet("", name)
			l := lbLeftovers(nc.hosts[0], cur.Metadata.UID)
			return api.IsNotFound(err) && len(l) == 0, fmt.Sprintf("%v; %s", err, strings.Join(l, "; "))
		})
	}
	ds.report(b, "serving")
}

// BenchmarkLBThroughput compares requests/s and p99 latency through an
// ouro load balancer with a plain HAProxy started by the benchmark with
// the same configuration, in the same run, with the same client: one
// host, 3 web members (busybox httpd), the load balancer's haproxy in its
// namespace, and the plain haproxy (Debian's, the same binary) in the
// namespace of an instance "plain" on the same network and host, its
// haproxy.cfg the load balancer's with its bind address, runtime socket
// and state file changed, started the same way. 8 workers send requests,
// each on a new connection, for 2 s to each side in turn, 8 rounds each,
// each side first in half of them. It reports
// ouro-rps, plain-rps, rps-ratio (ouro / plain), ouro-p99-ms, plain-p99-ms
// and p99-ratio.
//
//	go test ./test/e2e -run '^$' -bench LBThroughput -benchtime 1x
func BenchmarkLBThroughput(b *testing.B) {
	testenv.NeedBinary(b, "haproxy")
	nc, client := newLBBench(b)
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--wait")...)
	lb := nc.waitMembersUp("", "web", 60*time.Second, "web-0", "web-1", "web-2")
	waitAnswers(b, client, vipAddr(lb), 30*time.Second, "web-0", "web-1", "web-2")
	plainAddr := startPlainHAProxy(b, nc, lb)
	waitAnswers(b, client, plainAddr, 30*time.Second, "web-0", "web-1", "web-2")

	var ouro, plain throughput
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each side goes first in half the rounds.
		for r := 0; r < lbThroughputRounds; r++ {
			if r%2 == 0 {
				ouro.add(measureThroughput(client, vipAddr(lb)))
				plain.add(measureThroughput(client, plainAddr))
			} else {
				plain.add(measureThroughput(client, plainAddr))
				ouro.add(measureThroughput(client, vipAddr(lb)))
			}
		}
	}
	b.StopTimer()
	b.Logf("ouro: %s; plain haproxy: %s", &ouro, &plain)
	b.ReportMetric(ouro.rps(), "ouro-rps")
	b.ReportMetric(plain.rps(), "plain-rps")
	b.ReportMetric(ouro.rps()/plain.rps(), "rps-ratio")
	b.ReportMetric(ouro.p99().Seconds()*1000, "ouro-p99-ms")
	b.ReportMetric(plain.p99().Seconds()*1000, "plain-p99-ms")
	b.ReportMetric(ouro.p99().Seconds()/plain.p99().Seconds(), "p99-ratio")
}

// throughput accumulates rounds of measureThroughput.
type throughput struct {
	ok, failed int
	elapsed    time.Duration
	latencies  durations
}

func (t *throughput) add(r throughput) {
	t.ok += r.ok
	t.failed += r.failed
	t.elapsed += r.elapsed
	t.latencies = append(t.latencies, r.latencies...)
}

func (t *throughput) rps() float64 { return float64(t.ok) / t.elapsed.Seconds() }

func (t *throughput) p99() time.Duration { return t.latencies.pct(0.99) }

func (t *throughput) String() string {
	return fmt.Sprintf("%d answered, %d failed in %v: %.0f/s, p50 %v, p99 %v", t.ok, t.failed, t.elapsed.Round(time.Millisecond),
		t.rps(), t.latencies.pct(0.5).Round(10*time.Microsecond), t.p99().Round(10*time.Microsecond))
}

// measureThroughput sends requests to addr from the namespace at netns
// from lbThroughputWorkers workers for lbThroughputRound.
func measureThroughput(netns, addr string) throughput {
	hc := httpClientIn(netns, 5*time.Second)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), lbThroughputRound)
	defer cancel()
	var mu sync.Mutex
	var res throughput
	var wg sync.WaitGroup
	start := time.Now()
	for range lbThroughputWorkers {
		wg.Go(func() {
			var lat durations
			ok, failed := 0, 0
			for ctx.Err() == nil {
				t0 := time.Now()
				_, err := getBody(context.Background(), hc, addr)
				switch {
				case err == nil:
					ok++
					lat = append(lat, time.Since(t0))
				default:
					failed++
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// startPlainHAProxy starts haproxy in the namespace of a new instance
// "plain" on the load balancer's network and host, with the load
// balancer's configuration: its frontends bound to the instance's address
// instead of the VIP, its own runtime socket, no server state file, and
// the load balancer's members as servers. It returns the address the
// plain haproxy serves the first listener on.
func startPlainHAProxy(b *testing.B, nc *netCloud, lb *api.LoadBalancer) string {
	b.Helper()
	host := nc.hosts[0]
	nc.create(vm{name: "plain"})
	ifc := nc.iface("", "plain")
	netns, err := nc.instanceNetns("", "plain")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(lbDir(host, lb.Metadata.UID), "haproxy.cfg"))
	if err != nil {
		b.Fatalf("the load balancer's configuration: %v", err)
	}
	dir := b.TempDir()
	cfg := plainConfig(string(raw), lb, ifc.IP, dir)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	if out, err := runIn(netns, 30*time.Second, "haproxy", "-c", "-f", path); err != nil {
		b.Fatalf("haproxy -c of the plain configuration: %v\n%s\n%s", err, out, cfg)
	}
	// Started as the data plane starts its own (lbplane/haproxy): master-
	// worker, in the background, in a session of its own. (In the
	// foreground, in the test's session, it serves differently: the
	// scheduler's autogroups share the CPU by session.)
	cmd := commandIn(netns, "haproxy", "-W", "-D", "-p", filepath.Join(dir, "haproxy.pid"),
		"-S", filepath.Join(dir, "master.sock"), "-f", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	b.Cleanup(func() {
		for _, pid := range processesMentioning(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("start the plain haproxy: %v\n%s", err, out)
	}
	b.Logf("plain haproxy in %s's namespace (%s), configuration:\n%s", "plain", ifc.IP, cfg)
	return net.JoinHostPort(ifc.IP, "80")
}

// plainConfig rewrites a load balancer's haproxy.cfg for a plain haproxy
// serving at addr with its files in dir; the servers of every backend are
// the load balancer's members, with the options of the configuration's
// own server lines.
func plainConfig(cfg string, lb *api.LoadBalancer, addr, dir string) string {
	var out []string
	var opts string // the options of the first server line seen
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "server" && opts == "" {
			opts = strings.Join(f[3:], " ")
		}
	}
	if opts == "" {
		opts = "weight 1 check inter 1000 fall 2 rise 2"
	}
	var servers []string
	for _, m := range lb.Status.Members {
		if m.State == api.MemberActive {
			servers = append(servers, fmt.Sprintf("    server %s %s %s", m.Instance, net.JoinHostPort(m.Address, fmt.Sprint(m.Port)), opts))
		}
	}
	inBackend := false
	// flush puts the servers at the end of a backend, before the blank
	// lines that end it.
	flush := func() {
		if !inBackend {
			return
		}
		end := len(out)
		for end > 0 && strings.TrimSpace(out[end-1]) == "" {
			end--
		}
		out = slices.Insert(out, end, servers...)
	}
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			out = append(out, line)
			continue
		}
		switch f[0] {
		case "global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist":
			flush()
			inBackend = f[0] == "backend"
		case "server":
			continue // replaced by the members
		case "server-state-file", "load-server-state-from-file":
			continue
		case "stats":
			if len(f) > 1 && f[1] == "socket" {
				line = "    stats socket " + filepath.Join(dir, "haproxy.sock") + " mode 600 level admin"
			}
		case "bind":
			if len(f) > 1 {
				if _, port, err := net.SplitHostPort(f[1]); err == nil {
					line = strings.TrimSpace("    bind " + net.JoinHostPort(addr, port) + " " + strings.Join(f[2:], " "))
					line = "    " + line
				}
			}
		}
		out = append(out, line)
	}
	flush()
	return strings.Join(out, "\n") + "\n"
}

// TestLBPlainConfig checks the rewrite of a load balancer's haproxy.cfg
// for the plain HAProxy of BenchmarkLBThroughput.
func TestLBPlainConfig(t *testing.T) {
	cfg := `global
    master-worker
    stats socket /run/ouro/x/lb/u/haproxy.sock mode 600 level admin expose-fd listeners
    server-state-file /run/ouro/x/lb/u/state
    maxconn 8000

defaults
    mode tcp
    load-server-state-from-file global

frontend l-tcp-80
    mode tcp
    bind 172.31.0.9:80
    default_backend b-default-tcp

backend b-default-tcp
    mode tcp
    balance roundrobin
    server m-old 172.31.0.2:8080 weight 1 check inter 1000 fall 2 rise 2
`
	lb := &api.LoadBalancer{Status: api.LoadBalancerStatus{Members: []api.LoadBalancerMember{
		{Instance: "web-0", Address: "172.31.0.3", Port: 8080, State: api.MemberActive},
		{Instance: "web-1", Address: "172.31.0.4", Port: 8080, State: api.MemberDraining},
	}}}
	got := plainConfig(cfg, lb, "172.31.0.20", "/tmp/p")
	for _, want := range []string{
		"    stats socket /tmp/p/haproxy.sock mode 600 level admin\n",
		"    bind 172.31.0.20:80\n",
		"    balance roundrobin\n    server web-0 172.31.0.3:8080 weight 1 check inter 1000 fall 2 rise 2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plain configuration lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"server-state", "m-old", "web-1", "172.31.0.9"} {
		if strings.Contains(got, bad) {
			t.Errorf("plain configuration keeps %q:\n%s", bad, got)
		}
	}
}

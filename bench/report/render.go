package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Render writes the markdown report of samples and peers to w.
func Render(w io.Writer, samples Samples, peers *Peers) {
	m := peers.Machine
	get := func(k string) string {
		if v := m[k]; v != "" {
			return v
		}
		return "unknown"
	}
	fmt.Fprintf(w, `# Benchmarks

Written by `+"`make bench`"+` (bench/run.sh → bench/report); do not edit by hand, run it again.
Figures are what this machine measured in one run of the suite, peers included; they are never
asserted by any test. Each Ouroboros figure is the median of the runs, with the smallest and
largest in brackets; targets are those of the design (DESIGN.md, "Performance targets").

## Machine

| CPU | cores | memory | kernel | date |
|---|---|---|---|---|
| %s | %s | %s | %s | %s |

## Results

| what | Ouroboros: median (min–max) | runs | peer, same run | ratio | target (DESIGN.md) |
|---|---|---|---|---|---|
`, cell(get("cpu")), cell(get("cores")), cell(get("memory")), cell(get("kernel")), cell(get("date")))

	for _, f := range figures {
		ours, runs, value, ok := oursCell(f, samples, peers)
		peer, ratio := peerCell(f, peers, value, ok)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(f.what), ours, runs, peer, ratio, cell(f.target))
	}

	fmt.Fprint(w, `
## How each figure is measured

- **Container create → Running**: `+"`BenchmarkContainerCreateToRunning`"+` in test/e2e: a real
  `+"`ouro server`"+` and `+"`ouro agent`"+` (separate processes; crun where it works, else runc; user namespace and seccomp filter), one busybox instance at a time, from
  the create call until a watch sees phase Running; p50 and p90 over the instances of one run.
  Peer: `+"`lxc-create -t busybox`"+` then `+"`lxc-start`"+` and `+"`lxc-wait -s RUNNING`"+` of a fresh container
  (no network, in a scratch lxcpath), timed by run.sh, destroyed after each run.
  Floor, same run: after each instance is Running, the OCI runtime the driver used for it
  (recorded in its directory) is run by hand, `+"`run -d`"+`, on a copy of its bundle (its config.json:
  namespaces, id mapping, seccomp filter, mounts; a fresh overlay of the same layers; a cgroup of
  its own), timed from the call until it returns, then removed.
- **VM create → guest kernel running**: `+"`BenchmarkVMCreateToKernel`"+` in test/e2e: the tiny test
  image (the host's Debian kernel and a busybox initramfs, internal/testimage) imported as a
  kernel image; per iteration one VM through the API of a real server and agent (placement, TAP
  port on the network's bridge, NoCloud seed, QEMU start) from the create call until "Linux
  version" is in its serial log, then one transient libvirt domain (`+"`virsh create`"+`, Debian's
  libvirtd, same kernel, initramfs, command line, 1 vCPU, 128 MiB, serial to a file) from the
  call until the same line is in its file. Both logs polled every 10 ms; each guest removed before
  the next boots. Both sides use KVM where it works and TCG where it does not. Ouroboros boots the
  kernel uncompressed through its PVH entry (docs/architecture.md, "VM driver"; decompressed
  once per host at the first create); libvirt boots the bzImage as it is, through SeaBIOS.
- **Host dies → group running elsewhere**: `+"`BenchmarkGroupHostLoss`"+` in test/e2e: 3 hosts (each
  its own network namespace and agent), a group of 4 busybox members spread softly over them; the
  host running most members is cut as a power cut would (SIGKILL to its agent, its containers'
  shims and processes), and the figure is the time from the cut until a watch of the group's
  instances shows 4 Running members, none on the dead host. The agents' defaults apply: heartbeat
  every 2 s, presence lease 6 s; the killed agent's connection closes and its endpoint refuses
  connections, so the server moves its presence to a 3 s lease (docs/healing.md), and most of
  the figure is that lease running out.
- **False "host lost"**: `+"`BenchmarkHostLostFalse`"+` in bench/: a real server (embedded etcd, API,
  controllers) and 1,000 hollow hosts in one process, every host heartbeating every 2 s with a 6 s
  lease all along. Once all are Ready, 32 clients create tiny instances as fast as they are
  answered up to 5,000 live, then each create first deletes the oldest; 2 clients list the live
  instances (table view) back to back; the hollow hosts report their instances' phases. A watch
  of the hosts counts every change of a host to NotReady for 10 minutes (`+"`BENCH_FP_DURATION`"+`):
  every such change is false, the hosts being alive. The benchmark also prints the server's
  heartbeat latencies (its metrics) each minute.
- **Stack plan**: `+"`BenchmarkStackPlan`"+` in test/e2e: a real server with a stack of 100 security
  groups (two rules each) and 100 key pairs applied; `+"`ouro stack plan`"+` of the same file, timed as a
  process from its start to its exit (code 0, nothing to change): reading and rendering the file,
  reading the stack and the live objects, diffing them. p50 and max over 10 runs.
- **Stack apply**: `+"`BenchmarkStackApply`"+` in test/e2e: a real server and two hosts (agents and OCI
  runtime, each host in its own network namespace; one host takes 32 tiny instances); a stack of
  50 busybox instances applied with `+"`ouro stack apply`"+` (without --wait), from the call until a watch
  sees all 50 Running; then, on the emptied hosts, the same 50 instances made by 50 calls of
  `+"`ouro instance create`"+`, one after the other, from the first call until all 50 are Running.
- **Scheduling**: `+"`BenchmarkScale`"+` in bench/: a real server (embedded etcd, API, controllers)
  and 1,000 hollow hosts in one process on this machine; the hollow hosts join, heartbeat every 2 s
  and watch their instances through the API like real agents. 32 concurrent clients create
  10,000 tiny instances that tolerate the hollow taint. Placements/s is 10,000 divided by the time
  from the first create until an admin watch saw every instance with status.host; the CPU a
  placement costs is the process's CPU time (getrusage: server, hollow hosts and clients) over
  the same time, divided by 10,000, which a busy machine changes far less than the rates.
- **Scheduling a backlog**: `+"`BenchmarkScheduleBacklog`"+` in bench/, as kube-scheduler's
  scheduler_perf measures: the cloud of the scheduling benchmark, but the controllers paused
  first (the benchmark takes their election's leadership from the server, as another server
  would, and holds it; the API keeps serving). The 32 clients create the 10,000 instances, which
  stay Pending; then leadership is handed back, and the figure is 10,000 divided by the time from
  the hand-back until an admin watch saw every instance with status.host: the new leader's start
  (the election, its informers' full read of 1,000 hosts and 10,000 instances) and the placements,
  while the hollow hosts start what is placed. The creates of the paused phase give the API's
  create path alone (creates/s, and CPU a create costs: the process's CPU time over the creates).
- **List latency**: in the same cloud, after every instance is Running: a full list of the
  project's 10,000 instances as the CLI does it (one request, no limit, the table view
  `+"`?view=table`"+`, decoded into instances), 50 times, alternating by fives with 50 lists of whole
  objects (as `+"`-o json`"+`, the client package and agents list), and a list (table view) selecting
  the 100 instances labelled `+"`sel=yes`"+`, 200 times. Each list is timed apart: *server* from the request
  to the answer's last byte read (TLS and HTTP/2 on loopback, as the client package speaks them;
  the time to the first byte is in the benchmark's log), *client decode* the JSON decode of the
  answer into `+"`[]api.Instance`"+`.
- **EC2 API**: `+"`BenchmarkEC2`"+` in bench/: a real server (embedded etcd, API, controllers) and
  10 hollow hosts (their taint removed: EC2 callers cannot tolerate it) in one process, an access
  key of the admin, aws-sdk-go-v2's EC2 client over HTTPS. 20 times one after the other:
  RunInstances of one tiny instance, then DescribeInstances of its id every 5 ms until it is
  running; then the same instance through the REST API (create, then GET every 5 ms until
  Running). Then instances are added up to 1,000 and DescribeInstances of all of them (one page)
  is timed 50 times, the SDK's decoding included, then 50 times as one signed request whose
  answer is read as bytes (the server's share).
  `+"`BenchmarkEC2Calls`"+` in bench/, same kind of server: single calls timed alone, hundreds of times
  each: DescribeInstances of one id through the SDK, the same request signed alone and read as
  bytes, a REST GET of one instance; RunInstances of one instance against one REST create.
  `+"`BenchmarkEC2RunToRunning`"+` in test/e2e: a real server, agent and OCI runtime; 14 times, in
  turns first, RunInstances of one busybox container instance through the SDK until
  DescribeInstances shows it running, and the same instance through REST until GET shows it
  Running, both polled every 5 ms; all left running.
- **Console**: `+"`BenchmarkConsoleMap`"+` in bench/: the cloud of the scheduling benchmark (1,000 hollow
  hosts, 10,000 Running instances), then the web console in headless Chromium (Debian's package,
  driven with chromedp), signed in as the admin; the map lists hosts and instances in the map
  view (`+"`?view=map`"+`). A cold load of `+"`#/map`"+` (cache off) is timed in
  the page from the navigation's start to the animation frame that first shows a host panel, and
  to the frame that shows every host's panel and every instance's tile. Then 50 instances are
  created through the API one at a time; each is timed from the create call to the moment a
  MutationObserver in the page saw its tile added. Sizes come from the browser's network events
  of the cold load (bytes received: headers and gzip bodies), split into the console's own files
  and the /v1 answers; all files of console/web are also fetched one by one with gzip.
- **Idle memory**: `+"`BenchmarkIdleUp`"+`: `+"`ouro up`"+` on free loopback ports with a fresh data dir and
  its own CLI config, idle for 30 s after it said it is up, then VmRSS from /proc/PID/status.
- **Control-plane leader lost**: `+"`BenchmarkLeaderFailover`"+` in test/e2e: per run a fresh control
  plane of 3 nodes on loopback, each an etcd member (Debian's etcd, default 100 ms heartbeat and
  1 s election timeout) and an `+"`ouro server`"+` given all 3 members (`+"`--etcd-endpoints`"+`); the
  first server makes the CA and the admin, the others start with its pki/ca.crt and ca.key in
  their data dirs. One hollow host joins through one server. etcd's leadership is moved to the node
  whose server leads the controllers (the election key in etcd says which), then that node's server
  and etcd member are SIGKILLed together. From the kill, new instances are created one at a time
  through the third server (each create sent once, without the client's retries; after an error
  answer the next follows 50 ms later): *writes accepted* is when a create is first answered with
  success, *placed* when that instance has status.host, which only the new leader's scheduler sets
  (polled every 20 ms). Writes wait for etcd's election (a randomized 1–2 s election timeout).
  Placement waited also for the dead server's 2 s election lease, which a new etcd leader extends
  by its 1 s election timeout; now the waiting servers probe the leader's API address every
  100 ms and, after three refused connections, revoke its session, which takes effect as soon
  as etcd has a leader again. Each run logs the breakdown.
- **Bootstrap**: `+"`BenchmarkBootstrap`"+` in test/e2e: per run two network namespaces of this machine
  as hosts, each with its own sshd (the packages are installed: prepared hosts), and `+"`ouro bootstrap`"+`
  of one server and one agent from a third namespace, from the first SSH connection until the agent
  is Ready and the context written (the binary copied to both, the server started and its API
  answering, a join token, the agent joined); then the same command again, which changes nothing.
  Each is the median of the runs.
- **API VIP failover**: `+"`BenchmarkAPIVIPFailover`"+` in test/e2e: per run 3 servers, each in its own network
  namespace on one bridge with its embedded etcd member (peers over TLS), the second and third
  joined with `+"`ouro server --join`"+`, all started with `+"`--api-vip`"+`. Several times: once all 3 are
  ready and one holds the VIP, the holder is SIGKILLed (its etcd member with it); from the kill, a
  client in another namespace sends one request through the VIP at a time, each on a new
  connection with a 300 ms timeout, 20 ms apart, until one is answered; then the killed server is
  started again. The VIP's election has a 2 s session TTL; the holder keeps etcd's leadership
  elsewhere, so a kill costs the lease's expiry (checked by etcd every 500 ms) and not an etcd
  election too. p50 and max are over every kill of the run.
- **Load balancer failover**: `+"`BenchmarkLBFailover`"+` in test/e2e: 3 hosts, a load balancer on
  two of them (HAProxy and keepalived in its namespace on each, VRRP between them), 2 web members
  and a client instance on the third. Clients send requests to the VIP all the time from the client's
  namespace, each on a new connection given up after 300 ms. Each run cuts the host holding the VIP
  (SIGKILL to its agent, haproxy and keepalived, its switch port down) and measures from the cut
  until the first answer to a request sent after it; the host then returns and the VIP settles
  before the next cut. p50 and max over the runs of one benchmark.
- **Sick member out of rotation**: `+"`BenchmarkLBMemberDown`"+`: one LB host, 3 busybox httpd members
  checked by HAProxy with GET /healthz (the defaults: every 1 s, down after 2 failures), requests to
  the VIP all the time; from the start of the `+"`ouro instance exec`"+` that removes one member's
  /healthz until the last answer from that member, confirmed by 30 answers in a row from the
  others (the exec's own time, logged, is included).
- **Load balancer create → serving**: `+"`BenchmarkLBCreateToServing`"+`: the same cloud; from the create
  call (API) of a load balancer of the group until a request to its VIP is answered by a member;
  each load balancer is deleted, and gone from its host, before the next. The client asks at
  once, before the VIP exists: its kernel sends the next ARP request for the VIP a second later
  (nothing announces a single host's VIP), so the figure is about 1 s even when the status says
  Ready after 0.3 s (each run logs both).
- **Load balancer throughput and p99**: `+"`BenchmarkLBThroughput`"+`: the same cloud; 8 Go workers in the
  client's namespace send GET / on a new connection each, 2 s to the ouro load balancer's VIP, then
  2 s to a plain HAProxy (the same Debian binary, started the same way: master-worker, in the
  background, in a session of its own) the benchmark starts in the namespace of an ordinary
  instance on the same network and host, with the load balancer's haproxy.cfg (only the bind
  address, runtime socket and server-state file changed; the same servers and checks); 8 rounds
  of each, alternating, each side first in half of them.

## Where the CPU goes

CPU profiles of placement and of the API's create path, before and after the changes that
touched them: [performance.md](performance.md).
`)
	if len(peers.Notes) > 0 {
		fmt.Fprint(w, "\n## Notes from this run\n\n")
		keys := make([]string, 0, len(peers.Notes))
		for k := range peers.Notes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, n := range peers.Notes[k] {
				fmt.Fprintf(w, "- **%s**: %s\n", k, oneLine(n))
			}
		}
	}
}

// oursCell returns our figure's cell, its run count and its median.
func oursCell(f figure, samples Samples, peers *Peers) (cell, runs string, median float64, ok bool) {
	if f.missing != "" {
		return "not measured: " + f.missing, "—", 0, false
	}
	st, ok := Summarize(samples[key(f.bench, f.unit)])
	if !ok {
		why := "no result in this run"
		if notes := peers.Notes[f.bench]; len(notes) > 0 {
			why = oneLine(notes[0])
		}
		return "not measured: " + why, "0", 0, false
	}
	return fmt.Sprintf("**%s %s** (%s–%s)", num(st.Median), f.show, num(st.Min), num(st.Max)),
		fmt.Sprint(st.N), st.Median, true
}

// peerCell returns the peer's cell and the ratio of ours to it.
func peerCell(f figure, peers *Peers, ours float64, haveOurs bool) (peer, ratio string) {
	if f.peer == "" {
		return "—", "—"
	}
	xs := peers.Samples[f.peer]
	v, ok := Percentile(xs, f.peerP)
	if !ok {
		why := "no result in this run"
		if notes := peers.Notes[f.peer]; len(notes) > 0 {
			why = oneLine(notes[0])
		}
		return fmt.Sprintf("%s: not measured: %s", f.peerName, why), "—"
	}
	peer = fmt.Sprintf("%s: %s %s (%d runs)", f.peerName, num(v), f.show, len(xs))
	if !haveOurs || v == 0 {
		return peer, "—"
	}
	return peer, fmt.Sprintf("%.2f×", ours/v)
}

// num formats a figure with sensible precision.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return addCommas(fmt.Sprintf("%.0f", v))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// addCommas groups the digits of an integer string by thousands.
func addCommas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

// oneLine joins the lines of s with spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

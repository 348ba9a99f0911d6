// Command report turns the results of bench/run.sh into
// docs/benchmarks.md: `go test -bench` output plus a TSV of peer timings,
// notes and machine facts. For each figure it writes the median of the
// runs with their minimum and maximum, the peer's figure from the same run
// where a peer exists, the ratio, and the target from the design.
//
//	go run ./bench/report -bench bench.txt -peers peers.tsv -o docs/benchmarks.md
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// figure is one row of the report.
type figure struct {
	what string
	// bench and unit name the Go benchmark metric.
	bench, unit string
	// show is the unit as printed.
	show string
	// target is the design's target and anchors (docs DESIGN.md).
	target string
	// peer names the peer samples, peerP the percentile of them compared
	// with our median, peerName how the peer is described.
	peer     string
	peerP    float64
	peerName string
	// missing, when set, is why the figure cannot be measured yet.
	missing string
}

// figures is what docs/benchmarks.md reports, in order.
var figures = []figure{
	{what: "Container create call → Running, p50", bench: "BenchmarkContainerCreateToRunning", unit: "p50-ms", show: "ms",
		target: "p50 ≤ 150 ms; ≤ 0.5× `lxc-create -t busybox` + `lxc-start` (LXD create+start < 1 s on CoW storage)",
		peer:   "lxc-create-start-ms", peerP: 0.5, peerName: "`lxc-create -t busybox` + `lxc-start`, p50"},
	{what: "Container create call → Running, p90", bench: "BenchmarkContainerCreateToRunning", unit: "p90-ms", show: "ms",
		target: "(the design sets p50 only)",
		peer:   "lxc-create-start-ms", peerP: 0.9, peerName: "`lxc-create -t busybox` + `lxc-start`, p90"},
	{what: "… floor: the OCI runtime alone, `run -d` by hand on a bundle prepared as the instance's, same run, p50", bench: "BenchmarkContainerCreateToRunning", unit: "floor-p50-ms", show: "ms", target: "—"},
	{what: "… ratio create → Running / floor (medians)", bench: "BenchmarkContainerCreateToRunning", unit: "x-floor", show: "×",
		target: "≤ 0.5× the floor (issue 18; the path includes that run, so 1.0× is its bound)"},
	{what: "VM create call → guest kernel running, p50", bench: "BenchmarkVMCreateToKernel", unit: "ouro-p50-s", show: "s",
		target: "≤ 0.5× `virsh create` of the same kernel (issue 18; Nova boot 13 s mean; EC2 ≈ 26 s to SSH)"},
	{what: "… `virsh create` of the same kernel and initramfs, same run, p50", bench: "BenchmarkVMCreateToKernel", unit: "virsh-p50-s", show: "s", target: "—"},
	{what: "… ratio ouro / virsh (medians)", bench: "BenchmarkVMCreateToKernel", unit: "ratio", show: "×", target: "≤ 0.5"},
	{what: "Scheduling, 1,000 hollow hosts, 10,000 instances: placements", bench: "BenchmarkScale", unit: "placements/s", show: "/s",
		target: "≥ 1,000 placements/s on 2 cores (kube-scheduler ≈ 100 pods/s; Nomad C1M ≈ 3,750/s on 5 servers)"},
	{what: "… API creates (32 concurrent clients)", bench: "BenchmarkScale", unit: "creates/s", show: "/s", target: "—"},
	{what: "… CPU time a placement costs (the one process: server, hollow hosts, clients)", bench: "BenchmarkScale", unit: "cpu-ms/placement", show: "ms", target: "—"},
	{what: "Scheduling a backlog (as scheduler_perf): 10,000 Pending instances, 1,000 hollow hosts, from the controllers' start to the last placement", bench: "BenchmarkScheduleBacklog", unit: "placements/s", show: "/s",
		target: "≥ 1,000 placements/s on 2 cores (issue 18)"},
	{what: "… from the controllers' start (leadership handed over) to the first placement", bench: "BenchmarkScheduleBacklog", unit: "first-placement-ms", show: "ms", target: "—"},
	{what: "… CPU time a placement costs (the one process)", bench: "BenchmarkScheduleBacklog", unit: "cpu-ms/placement", show: "ms", target: "—"},
	{what: "… API creates alone, controllers paused (32 concurrent clients)", bench: "BenchmarkScheduleBacklog", unit: "creates/s", show: "/s", target: "—"},
	{what: "… CPU time a create costs, controllers paused (the one process)", bench: "BenchmarkScheduleBacklog", unit: "cpu-ms/create", show: "ms", target: "—"},
	{what: "… every instance reported Running by its hollow host", bench: "BenchmarkScale", unit: "running/s", show: "/s", target: "—"},
	{what: "List 10,000 instances (CLI-style: one request, table view), p50", bench: "BenchmarkScale", unit: "list-p50-ms", show: "ms", target: "—"},
	{what: "List 10,000 instances (CLI-style: one request, table view), p99", bench: "BenchmarkScale", unit: "list-p99-ms", show: "ms",
		target: "p99 ≤ 200 ms (Kubernetes SLO: 30 s for cluster-wide lists)"},
	{what: "… server: request → last byte, p50", bench: "BenchmarkScale", unit: "list-server-p50-ms", show: "ms", target: "—"},
	{what: "… server: request → last byte, p99", bench: "BenchmarkScale", unit: "list-server-p99-ms", show: "ms", target: "—"},
	{what: "… client decode, p50", bench: "BenchmarkScale", unit: "list-decode-p50-ms", show: "ms", target: "—"},
	{what: "… client decode, p99", bench: "BenchmarkScale", unit: "list-decode-p99-ms", show: "ms", target: "—"},
	{what: "List 10,000 instances, whole objects (-o json, client package), p50", bench: "BenchmarkScale", unit: "full-list-p50-ms", show: "ms", target: "—"},
	{what: "List 10,000 instances, whole objects, p99", bench: "BenchmarkScale", unit: "full-list-p99-ms", show: "ms", target: "—"},
	{what: "… server: request → last byte, p50", bench: "BenchmarkScale", unit: "full-list-server-p50-ms", show: "ms", target: "—"},
	{what: "… server: request → last byte, p99", bench: "BenchmarkScale", unit: "full-list-server-p99-ms", show: "ms", target: "—"},
	{what: "… client decode, p50", bench: "BenchmarkScale", unit: "full-list-decode-p50-ms", show: "ms", target: "—"},
	{what: "… client decode, p99", bench: "BenchmarkScale", unit: "full-list-decode-p99-ms", show: "ms", target: "—"},
	{what: "Label-selected list (100 of 10,000, table view), p50", bench: "BenchmarkScale", unit: "sel-list-p50-ms", show: "ms", target: "—"},
	{what: "Label-selected list (100 of 10,000, table view), p99", bench: "BenchmarkScale", unit: "sel-list-p99-ms", show: "ms", target: "—"},
	{what: "Console map, 1,000 hollow hosts, 10,000 instances: first meaningful paint (every panel and tile)", bench: "BenchmarkConsoleMap", unit: "fmp-ms", show: "ms",
		target: "≤ 1 s (issue 14)"},
	{what: "… first host panel on screen", bench: "BenchmarkConsoleMap", unit: "first-panel-ms", show: "ms", target: "—"},
	{what: "Console: instance created through the API → its tile on the open map, p95 of 50", bench: "BenchmarkConsoleMap", unit: "change-p95-ms", show: "ms",
		target: "p95 ≤ 1 s (issue 14)"},
	{what: "… p50", bench: "BenchmarkConsoleMap", unit: "change-p50-ms", show: "ms", target: "—"},
	{what: "Console: its own files as loaded with the map (headers + gzip bodies)", bench: "BenchmarkConsoleMap", unit: "assets-KB", show: "KB",
		target: "≤ 500 KB (issue 14)"},
	{what: "… every file of console/web, xterm.js included, gzip", bench: "BenchmarkConsoleMap", unit: "all-assets-gzip-KB", show: "KB", target: "≤ 500 KB (issue 14)"},
	{what: "… the API answers of that load (JSON, not compressed; lists in the map view)", bench: "BenchmarkConsoleMap", unit: "api-KB", show: "KB", target: "—"},
	{what: "EC2 API: RunInstances → running in DescribeInstances, p50 (10 hollow hosts, aws-sdk-go-v2)", bench: "BenchmarkEC2", unit: "ec2-run-p50-ms", show: "ms", target: "≤ 1.1× the REST API (issue 17)"},
	{what: "… the same instance through the REST API (create → Running in GET), p50", bench: "BenchmarkEC2", unit: "rest-run-p50-ms", show: "ms", target: "—"},
	{what: "… ratio EC2 / REST (medians)", bench: "BenchmarkEC2", unit: "run-ratio", show: "×", target: "≤ 1.1"},
	{what: "EC2 API: RunInstances → running in DescribeInstances, p50 (real server, agent and OCI runtime; container instances; aws-sdk-go-v2)", bench: "BenchmarkEC2RunToRunning", unit: "ec2-p50-ms", show: "ms", target: "≤ 1.1× the REST API (issue 17)"},
	{what: "… the same instance through the REST API (create → Running in GET), p50", bench: "BenchmarkEC2RunToRunning", unit: "rest-p50-ms", show: "ms", target: "—"},
	{what: "… ratio EC2 / REST (medians)", bench: "BenchmarkEC2RunToRunning", unit: "run-ratio", show: "×", target: "≤ 1.1 (issue 17)"},
	{what: "EC2 API: one DescribeInstances by id through aws-sdk-go-v2 (hollow hosts)", bench: "BenchmarkEC2Calls/describe-one", unit: "us-per-call", show: "µs", target: "—"},
	{what: "… the same request signed alone, answer read as bytes (the server's share)", bench: "BenchmarkEC2Calls/describe-one-raw", unit: "us-per-call", show: "µs", target: "—"},
	{what: "… GET of the same kind of instance through the REST client", bench: "BenchmarkEC2Calls/rest-get-one", unit: "us-per-call", show: "µs", target: "—"},
	{what: "EC2 API: one RunInstances call through aws-sdk-go-v2", bench: "BenchmarkEC2Calls/run-one", unit: "us-per-call", show: "µs", target: "—"},
	{what: "… one REST create", bench: "BenchmarkEC2Calls/rest-create-one", unit: "us-per-call", show: "µs", target: "—"},
	{what: "EC2 API: DescribeInstances of 1,000 instances (SDK decode included), p50", bench: "BenchmarkEC2", unit: "describe-1000-p50-ms", show: "ms", target: "—"},
	{what: "EC2 API: DescribeInstances of 1,000 instances, p99", bench: "BenchmarkEC2", unit: "describe-1000-p99-ms", show: "ms", target: "p99 ≤ 200 ms (issue 17)"},
	{what: "… the server's share (answer read as bytes, no SDK decode), p50", bench: "BenchmarkEC2", unit: "describe-1000-raw-p50-ms", show: "ms", target: "—"},
	{what: "… the server's share, p99", bench: "BenchmarkEC2", unit: "describe-1000-raw-p99-ms", show: "ms", target: "—"},
	{what: "Idle memory of `ouro up` (server + agent), VmRSS", bench: "BenchmarkIdleUp", unit: "rss-MiB", show: "MiB",
		target: "≤ 80 MiB RSS (k3s server ≈ 500 MiB; OpenStack controllers need GBs)"},
	{what: "Size of `bin/ouro`", bench: "BenchmarkIdleUp", unit: "binary-MiB", show: "MiB", target: "—"},
	{what: "Host dies → its group instances running elsewhere", bench: "BenchmarkGroupHostLoss", unit: "recover-s", show: "s",
		target: "≤ 10 s (Kubernetes ≈ 350 s; Masakari ≥ 240 s; Nomad ≈ 20–30 s)"},
	{what: "False \"host lost\": live hosts turned NotReady, 1,000 hollow hosts, loaded control plane, per hour", bench: "BenchmarkHostLostFalse", unit: "false-lost/h", show: "/h",
		target: "≤ 1 /h (issue 18)"},
	{what: "… the load meanwhile: instances created (and as many deleted)", bench: "BenchmarkHostLostFalse", unit: "creates/s", show: "/s", target: "—"},
	{what: "… full lists of the live instances", bench: "BenchmarkHostLostFalse", unit: "lists/s", show: "/s", target: "—"},
	{what: "Stack plan, unchanged, 200 resources (CLI process), p50", bench: "BenchmarkStackPlan", unit: "p50-ms", show: "ms",
		target: "≤ 1 s (issue 15; `terraform plan` refreshes every resource through its provider's API)"},
	{what: "… max", bench: "BenchmarkStackPlan", unit: "max-ms", show: "ms", target: "—"},
	{what: "Stack apply, 50 container instances → all Running", bench: "BenchmarkStackApply", unit: "stack-s", show: "s",
		target: "side by side with one CLI call each (issue 15)"},
	{what: "… the same 50 made by one `ouro instance create` each", bench: "BenchmarkStackApply", unit: "cli-s", show: "s", target: "—"},
	{what: "… ratio stack / CLI calls", bench: "BenchmarkStackApply", unit: "ratio", show: "×", target: "—"},
	{what: "Control-plane leader lost → writes accepted", bench: "BenchmarkLeaderFailover", unit: "accepted-s", show: "s",
		target: "≤ 3 s (etcd election 1 s)"},
	{what: "… an instance created then placed by the new leader", bench: "BenchmarkLeaderFailover", unit: "placed-s", show: "s",
		target: "—"},
	{what: "API VIP failover: holder killed → first answer through the VIP, p50", bench: "BenchmarkAPIVIPFailover", unit: "p50-s", show: "s",
		target: "p50 ≤ 3 s (kube-vip ≈ 3–5 s; keepalived defaults ≈ 3.6 s)"},
	{what: "… the slowest of the kills", bench: "BenchmarkAPIVIPFailover", unit: "max-s", show: "s", target: "—"},
	{what: "Bootstrap of 1 server + 1 agent onto prepared hosts (`ouro bootstrap`, over SSH)", bench: "BenchmarkBootstrap", unit: "bootstrap-s", show: "s",
		target: "≤ 60 s (issue 16; kolla-ansible and kubeadm-based installers take many minutes)"},
	{what: "… the rerun that changes nothing", bench: "BenchmarkBootstrap", unit: "rerun-s", show: "s", target: "≤ 5 s"},
	{what: "Load balancer: active LB host power cut → first new connection, p50", bench: "BenchmarkLBFailover", unit: "failover-p50-s", show: "s",
		target: "p50 ≤ 1 s (keepalived defaults ≈ 3.6 s, kube-vip ≈ 3–5 s, MetalLB ≈ 5–8 s, Octavia ≈ 3–10 s)"},
	{what: "… max", bench: "BenchmarkLBFailover", unit: "failover-max-s", show: "s", target: "max ≤ 2 s"},
	{what: "Load balancer: sick member out of rotation, p50", bench: "BenchmarkLBMemberDown", unit: "out-p50-s", show: "s",
		target: "≤ 3 s (HAProxy defaults ≈ 6 s; Incus 30 s; AWS ALB ≈ 60 s)"},
	{what: "… max", bench: "BenchmarkLBMemberDown", unit: "out-max-s", show: "s", target: "—"},
	{what: "Load balancer: create call → serving, p50", bench: "BenchmarkLBCreateToServing", unit: "serving-p50-s", show: "s",
		target: "≤ 2 s (Octavia 40–60 s)"},
	{what: "… max", bench: "BenchmarkLBCreateToServing", unit: "serving-max-s", show: "s", target: "—"},
	{what: "Load balancer throughput (a new connection per request, 8 clients)", bench: "BenchmarkLBThroughput", unit: "ouro-rps", show: "/s",
		target: "≥ 0.95× plain HAProxy"},
	{what: "… plain HAProxy, same configuration, client and run", bench: "BenchmarkLBThroughput", unit: "plain-rps", show: "/s", target: "—"},
	{what: "… ratio ouro / plain", bench: "BenchmarkLBThroughput", unit: "rps-ratio", show: "×", target: "≥ 0.95"},
	{what: "Load balancer p99 latency, same load", bench: "BenchmarkLBThroughput", unit: "ouro-p99-ms", show: "ms",
		target: "≤ 1.1× plain HAProxy"},
	{what: "… plain HAProxy", bench: "BenchmarkLBThroughput", unit: "plain-p99-ms", show: "ms", target: "—"},
	{what: "… ratio ouro / plain", bench: "BenchmarkLBThroughput", unit: "p99-ratio", show: "×", target: "≤ 1.1"},
}

func main() {
	benchPath := flag.String("bench", "", "file with `go test -bench` output (required)")
	peersPath := flag.String("peers", "", "TSV of machine facts, peer samples and notes written by run.sh")
	outPath := flag.String("o", "-", "markdown file to write (- for stdout)")
	flag.Parse()
	if err := run(*benchPath, *peersPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(benchPath, peersPath, outPath string) error {
	if benchPath == "" {
		return fmt.Errorf("-bench is required")
	}
	bf, err := os.Open(benchPath)
	if err != nil {
		return err
	}
	defer bf.Close()
	samples, err := ParseBench(bf)
	if err != nil {
		return fmt.Errorf("%s: %w", benchPath, err)
	}
	peers := &Peers{Machine: map[string]string{}, Samples: Samples{}, Notes: map[string][]string{}}
	if peersPath != "" {
		pf, err := os.Open(peersPath)
		if err != nil {
			return err
		}
		defer pf.Close()
		if peers, err = ParsePeers(pf); err != nil {
			return fmt.Errorf("%s: %w", peersPath, err)
		}
	}
	var b strings.Builder
	Render(&b, samples, peers)
	if outPath == "-" {
		_, err = io.WriteString(os.Stdout, b.String())
		return err
	}
	tmp := outPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, outPath)
}

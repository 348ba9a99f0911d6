package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Samples
		wantErr bool
	}{
		{
			name: "several runs and packages",
			in: `goos: linux
goarch: amd64
pkg: github.com/ouroboros-cloud/ouro/bench
cpu: AMD EPYC 7B13
BenchmarkScale-2   	       1	52113000000 ns/op	       812.0 creates/s	      1523 placements/s
BenchmarkScale-2   	       1	50000000000 ns/op	       900.5 creates/s	      1400 placements/s
PASS
pkg: github.com/ouroboros-cloud/ouro/test/e2e
BenchmarkContainerCreateToRunning-2 	      20	 123456 ns/op	 101.5 p50-ms	 140.2 p90-ms
ok  	github.com/ouroboros-cloud/ouro/test/e2e	30.1s
`,
			want: Samples{
				"BenchmarkScale ns/op":                     {52113000000, 50000000000},
				"BenchmarkScale creates/s":                 {812, 900.5},
				"BenchmarkScale placements/s":              {1523, 1400},
				"BenchmarkContainerCreateToRunning ns/op":  {123456},
				"BenchmarkContainerCreateToRunning p50-ms": {101.5},
				"BenchmarkContainerCreateToRunning p90-ms": {140.2},
			},
		},
		{
			name: "log lines and names without procs suffix",
			in: `BenchmarkScale
    scale_test.go:120: 1000 hosts, 10000 instances
BenchmarkIdleUp 1 5 ns/op 41.5 rss-MiB
BenchmarkSub/case-one-2 3 7 ns/op
`,
			want: Samples{
				"BenchmarkIdleUp ns/op":       {5},
				"BenchmarkIdleUp rss-MiB":     {41.5},
				"BenchmarkSub/case-one ns/op": {7},
			},
		},
		{name: "unit missing", in: "BenchmarkX-2 1 5 ns/op 7\n", wantErr: true},
		{name: "bad number", in: "BenchmarkX-2 1 5x ns/op\n", wantErr: true},
		{name: "empty", in: "", want: Samples{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBench(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParsePeers(t *testing.T) {
	in := "# comment\n\nmachine\tcpu\tAMD EPYC 7B13\nmachine\tcores\t2\npeer\tlxc-create-start-ms\t812.5\npeer\tlxc-create-start-ms\t790\nnote\tlxc-create-start-ms\tlxc-start failed: no cgroup\n"
	p, err := ParsePeers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if p.Machine["cpu"] != "AMD EPYC 7B13" || p.Machine["cores"] != "2" {
		t.Errorf("machine = %v", p.Machine)
	}
	if !reflect.DeepEqual(p.Samples["lxc-create-start-ms"], []float64{812.5, 790}) {
		t.Errorf("samples = %v", p.Samples)
	}
	if len(p.Notes["lxc-create-start-ms"]) != 1 {
		t.Errorf("notes = %v", p.Notes)
	}

	bad := []string{
		"peer\tx\tfast\n",
		"peer\tx\tNaN\n",
		"gossip\tx\t1\n",
		"peer\t\t1\n",
		"machine cpu AMD\n",
	}
	for _, b := range bad {
		if _, err := ParsePeers(strings.NewReader(b)); err == nil {
			t.Errorf("ParsePeers(%q) accepted it", b)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Stats
		ok   bool
	}{
		{"none", nil, Stats{}, false},
		{"one", []float64{3}, Stats{N: 1, Median: 3, Min: 3, Max: 3}, true},
		{"odd, unsorted", []float64{5, 1, 3}, Stats{N: 3, Median: 3, Min: 1, Max: 5}, true},
		{"even", []float64{4, 1, 3, 2}, Stats{N: 4, Median: 2.5, Min: 1, Max: 4}, true},
		{"ties", []float64{2, 2, 9, 2, 1}, Stats{N: 5, Median: 2, Min: 1, Max: 9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			got, ok := Summarize(tt.in)
			if ok != tt.ok || got != tt.want {
				t.Errorf("Summarize(%v) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Errorf("Summarize reordered its input: %v", tt.in)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	tests := []struct {
		p    float64
		want float64
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0.01, 1}}
	for _, tt := range tests {
		if got, ok := Percentile(xs, tt.p); !ok || got != tt.want {
			t.Errorf("Percentile(p=%v) = %v, %v; want %v", tt.p, got, ok, tt.want)
		}
	}
	if _, ok := Percentile(nil, 0.5); ok {
		t.Error("Percentile of nothing reported a value")
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkScale-2":  "BenchmarkScale",
		"BenchmarkScale":    "BenchmarkScale",
		"BenchmarkA/b-c-16": "BenchmarkA/b-c",
		"BenchmarkA/b-c":    "BenchmarkA/b-c",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	samples := Samples{
		"BenchmarkContainerCreateToRunning p50-ms": {120, 100, 140},
		"BenchmarkScale placements/s":              {1500, 1200, 1800, 1300, 1400},
		"BenchmarkLeaderFailover accepted-s":       {1.5, 1.25, 2},
		"BenchmarkLBFailover failover-p50-s":       {0.8},
	}
	peers := &Peers{
		Machine: map[string]string{"cpu": "Test CPU | fast", "cores": "2"},
		Samples: Samples{"lxc-create-start-ms": {400, 300, 500}},
		Notes:   map[string][]string{"BenchmarkIdleUp": {"needs root\nsecond line"}},
	}
	var b strings.Builder
	Render(&b, samples, peers)
	out := b.String()
	for _, want := range []string{
		"| Test CPU \\| fast | 2 | unknown |",
		"**120 ms** (100–140) | 3 |",
		"400 ms (3 runs) | 0.30× |",
		"**1,400 /s** (1,200–1,800) | 5 |",
		"| Load balancer: active LB host power cut → first new connection, p50 | **0.80 s** (0.80–0.80) | 1 | — | — |",
		"not measured: needs root second line",
		"p99 ≤ 200 ms",
		"| Control-plane leader lost → writes accepted | **1.50 s** (1.25–2.00) | 3 | — | — |",
		"| … an instance created then placed by the new leader | not measured: no result in this run | 0 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1,234,567", 150: "150", 12.34: "12.3", 1.234: "1.23", -2500: "-2,500"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

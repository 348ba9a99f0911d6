package usage

import (
	"math"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestCPUUsageMath(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name    string
		cpu     time.Duration
		wall    time.Duration
		vcpus   int
		wantMC  int64
		wantPct float64
		wantOK  bool
	}{
		{"half a vCPU", 5 * time.Second, 10 * time.Second, 1, 500, 50, true},
		{"two busy of four", 20 * time.Second, 10 * time.Second, 4, 2000, 50, true},
		{"idle", 0, 10 * time.Second, 2, 0, 0, true},
		{"over the quota is clamped", 30 * time.Second, 10 * time.Second, 2, 3000, 100, true},
		{"rounding", 333 * time.Millisecond, time.Second, 1, 333, 33.3, true},
		{"counter went back", -time.Second, 10 * time.Second, 1, 0, 0, false},
		{"no time passed", time.Second, 0, 1, 0, 0, false},
	}
	for _, tt := range tests {
		prev := sample{cpu: 10 * time.Second, at: t0}
		cur := sample{cpu: prev.cpu + tt.cpu, at: t0.Add(tt.wall)}
		mc, pct, ok := cpuUsage(prev, cur, tt.vcpus)
		if ok != tt.wantOK || (ok && (mc != tt.wantMC || math.Abs(pct-tt.wantPct) > 0.01)) {
			t.Errorf("%s: cpuUsage = %d, %v, %v; want %d, %v, %v", tt.name, mc, pct, ok, tt.wantMC, tt.wantPct, tt.wantOK)
		}
	}
	last := &api.Usage{CPUMillicores: 500, CPUPercent: 50, SampledAt: t0}
	for _, tt := range []struct {
		u    api.Usage
		want bool
	}{
		{api.Usage{CPUPercent: 52, SampledAt: t0.Add(10 * time.Second)}, false},
		{api.Usage{CPUPercent: 56, SampledAt: t0.Add(10 * time.Second)}, true},
		{api.Usage{CPUPercent: 44, SampledAt: t0.Add(10 * time.Second)}, true},
		{api.Usage{CPUPercent: 50, SampledAt: t0.Add(30 * time.Second)}, true},
	} {
		if got := worthWriting(last, tt.u); got != tt.want {
			t.Errorf("worthWriting(%+v) = %v, want %v", tt.u, got, tt.want)
		}
	}
	if !worthWriting(nil, api.Usage{}) {
		t.Error("a first sample is not written")
	}
}

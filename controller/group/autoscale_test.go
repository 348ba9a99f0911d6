package group

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestMeasureCPU(t *testing.T) {
	usage := func(pct float64, age time.Duration) func(*api.Instance) {
		return func(in *api.Instance) { in.Status.Usage = &api.Usage{CPUPercent: pct, SampledAt: t0.Add(-age)} }
	}
	ms := []*Member{
		{Inst: inst("web-0", "u", "1", api.PhaseRunning, "h", usage(80, time.Second))},
		{Inst: inst("web-1", "u", "1", api.PhaseRunning, "h", usage(40, 10*time.Second))},
		{Inst: inst("web-2", "u", "1", api.PhaseRunning, "h", usage(100, time.Minute))}, // stale
		{Inst: inst("web-3", "u", "1", api.PhaseRunning, "h", nil)},                     // no sample yet
		{Inst: inst("web-4", "u", "1", api.PhaseStarting, "h", usage(90, time.Second))}, // not running
		{Inst: inst("web-5", "u", "1", api.PhaseRunning, "h", usage(90, time.Second)), Deleting: true},
	}
	got := MeasureCPU(ms, t0)
	if got.Running != 4 || got.Samples != 2 || got.Mean != 60 {
		t.Errorf("MeasureCPU = %+v, want 4 running, 2 samples, mean 60", got)
	}
}

func TestRecommend(t *testing.T) {
	a := api.Autoscaling{Min: 1, Max: 10, TargetCPUPercent: 50}
	tests := []struct {
		name string
		cpu  CPU
		want int
		ok   bool
	}{
		{"at target", CPU{Running: 3, Samples: 3, Mean: 50}, 3, true},
		{"just above target", CPU{Running: 3, Samples: 3, Mean: 51}, 4, true},
		{"double load", CPU{Running: 3, Samples: 2, Mean: 100}, 6, true},
		{"idle", CPU{Running: 4, Samples: 4, Mean: 5}, 1, true},
		{"clamped to max", CPU{Running: 8, Samples: 8, Mean: 100}, 10, true},
		{"no fresh samples", CPU{Running: 3}, 0, false},
		{"nothing running", CPU{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Recommend(tt.cpu, a)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Recommend = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got, _ := Recommend(CPU{Running: 2, Samples: 2, Mean: 1}, api.Autoscaling{Min: 0, Max: 5, TargetCPUPercent: 90}); got != 1 {
		t.Errorf("light load with min 0: %d, want 1 (ceil)", got)
	}
}

func TestScale(t *testing.T) {
	const window = 5 * time.Minute
	ago := func(d time.Duration) *time.Time { x := t0.Add(-d); return &x }
	recs := func(counts ...int) []Recommendation { // one a minute, the last a minute ago
		var out []Recommendation
		for i, n := range counts {
			out = append(out, Recommendation{At: t0.Add(-time.Duration(len(counts)-i) * time.Minute), Count: n})
		}
		return out
	}
	tests := []struct {
		name      string
		cur, rec  int
		lastScale *time.Time
		history   []Recommendation
		want      int
		wantKept  int
	}{
		{"steady", 3, 3, nil, nil, 3, 1},
		{"scale out at once", 3, 5, ago(time.Minute), nil, 5, 1},
		{"scale out at most doubles", 2, 9, nil, nil, 4, 1},
		{"scale out from zero", 0, 3, nil, nil, 1, 1},
		{"scale out waits 15 s after the last scale", 3, 5, ago(5 * time.Second), nil, 3, 1},
		{"scale in held by a high recommendation in the window", 6, 2, nil, recs(6, 4, 3), 6, 4},
		{"scale in to the window's highest", 6, 2, nil, recs(4, 3, 2), 4, 4},
		{"old recommendations leave the window", 6, 2, nil, append([]Recommendation{{At: t0.Add(-10 * time.Minute), Count: 9}}, recs(3)...), 3, 2},
		{"scale in ignores the scale-out interval", 6, 2, ago(time.Second), recs(2), 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, kept := Scale(tt.cur, tt.rec, t0, tt.lastScale, tt.history, window)
			if got != tt.want || len(kept) != tt.wantKept {
				t.Errorf("Scale = %d keeping %d, want %d keeping %d", got, len(kept), tt.want, tt.wantKept)
			}
			if last := kept[len(kept)-1]; last.Count != tt.rec || !last.At.Equal(t0) {
				t.Errorf("newest kept recommendation %+v, want %d now", last, tt.rec)
			}
		})
	}
}

// TestScaleInStabilization walks a load drop through time: the count
// stays up for the window, then follows the highest recent recommendation.
func TestScaleInStabilization(t *testing.T) {
	const window = 3 * time.Minute
	cur := 6
	var hist []Recommendation
	var got []int
	for minute, rec := range []int{6, 2, 2, 3, 2, 2, 2, 2} {
		cur, hist = Scale(cur, rec, t0.Add(time.Duration(minute)*time.Minute), nil, hist, window)
		got = append(got, cur)
	}
	want := []int{6, 6, 6, 3, 3, 3, 2, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts over time %v, want %v", got, want)
		}
	}
}

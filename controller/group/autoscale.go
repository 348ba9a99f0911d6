package group

import (
	"math"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Autoscaler timings.
const (
	// UsageMaxAge: CPU samples older than this are ignored.
	UsageMaxAge = 30 * time.Second
	// ScaleOutInterval is the least time between two scale-outs.
	ScaleOutInterval = 15 * time.Second
)

// Autoscaling event reasons.
const (
	EventScaledOut = "ScaledOut"
	EventScaledIn  = "ScaledIn"
)

// CPU sums up the CPU use of a group's members.
type CPU struct {
	// Running counts live running members; Samples those of them with a
	// fresh usage sample, whose mean CPU use is Mean (percent).
	Running, Samples int
	Mean             float64
}

// MeasureCPU reads the live running members' CPU samples no older than
// UsageMaxAge.
func MeasureCPU(members []*Member, now time.Time) CPU {
	var c CPU
	var sum float64
	for _, m := range members {
		in := m.Inst
		if !m.Live() || in.Status.Phase != api.PhaseRunning {
			continue
		}
		c.Running++
		u := in.Status.Usage
		if u == nil || u.SampledAt.IsZero() || now.Sub(u.SampledAt) > UsageMaxAge {
			continue
		}
		c.Samples++
		sum += u.CPUPercent
	}
	if c.Samples > 0 {
		c.Mean = sum / float64(c.Samples)
	}
	return c
}

// Recommend returns clamp(ceil(running × mean / target), min, max): the
// count at which the mean CPU use would be at the target, if the load
// spread evenly. ok is false without fresh samples.
func Recommend(c CPU, a api.Autoscaling) (n int, ok bool) {
	if c.Samples == 0 || c.Running == 0 || a.TargetCPUPercent <= 0 {
		return 0, false
	}
	// The small epsilon keeps 3×50/50 at 3 despite rounding.
	n = int(math.Ceil(float64(c.Running)*c.Mean/float64(a.TargetCPUPercent) - 1e-9))
	return min(max(n, a.Min), a.Max), true
}

// Recommendation is one autoscaler recommendation and when it was made.
type Recommendation struct {
	At    time.Time
	Count int
}

// Scale decides the next desired count from the current one and a new
// recommendation rec:
//
//   - scale out at once to rec, but at most doubling (from 0 to 1), and
//     not sooner than ScaleOutInterval after the last scale (lastScale);
//   - scale in only to the highest recommendation of the last window
//     (history plus rec), so a short dip does not remove members.
//
// It returns the next count and the history to keep: recommendations
// within the window, rec included.
func Scale(cur, rec int, now time.Time, lastScale *time.Time, history []Recommendation, window time.Duration) (int, []Recommendation) {
	kept := make([]Recommendation, 0, len(history)+1)
	for _, r := range history {
		if now.Sub(r.At) < window {
			kept = append(kept, r)
		}
	}
	kept = append(kept, Recommendation{At: now, Count: rec})
	switch {
	case rec > cur:
		if lastScale != nil && now.Sub(*lastScale) < ScaleOutInterval {
			return cur, kept
		}
		return min(rec, max(2*cur, 1)), kept
	case rec < cur:
		highest := rec
		for _, r := range kept {
			highest = max(highest, r.Count)
		}
		return min(highest, cur), kept
	}
	return cur, kept
}

package agent

import (
	"context"
	"math"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// CPU usage (docs/healing.md): every UsageInterval the agent reads the
// total CPU time of its running instances from their drivers
// (driver.UsageReader), turns the difference to the previous sample into
// millicores and a percentage of the instance's vCPUs, and writes it as
// status.usage when it moved by more than usageDelta percentage points
// since the value last written, or when that value is usageRefresh old.
// An instance writes usage at most once per interval.

// Defaults of usage sampling.
const (
	// DefaultUsageInterval is how often CPU time is sampled.
	DefaultUsageInterval = 10 * time.Second
	// usageRefresh is the age at which an unchanged usage is written again,
	// so readers can tell a fresh sample from a stale one.
	usageRefresh = 30 * time.Second
	// usageDelta is the change in CPU percent that is worth a write.
	usageDelta = 5.0
)

// cpuSample is one reading of an instance's CPU time.
type cpuSample struct {
	startedAt time.Time // the run sampled
	cpu       time.Duration
	at        time.Time
}

// cpuUsage computes the usage between two samples of an instance with
// vcpus: millicores (CPU seconds per second × 1000) and that as a percent
// of its vCPUs, 0–100. ok is false when the samples cannot be compared
// (no time passed, or the counter went back).
func cpuUsage(prev, cur cpuSample, vcpus int) (millicores int64, percent float64, ok bool) {
	wall := cur.at.Sub(prev.at)
	used := cur.cpu - prev.cpu
	if wall <= 0 || used < 0 {
		return 0, 0, false
	}
	millicores = int64(math.Round(float64(used) / float64(wall) * 1000))
	if vcpus > 0 {
		percent = float64(millicores) / float64(vcpus*1000) * 100
		percent = math.Round(min(max(percent, 0), 100)*10) / 10
	}
	return millicores, percent, true
}

// usageWorthWriting reports whether u should replace last (nil if none
// was written).
func usageWorthWriting(last *api.Usage, u api.Usage) bool {
	return last == nil || math.Abs(u.CPUPercent-last.CPUPercent) > usageDelta ||
		u.SampledAt.Sub(last.SampledAt) >= usageRefresh
}

// usageLoop samples the running instances' CPU time every interval.
func (a *Agent) usageLoop(ctx context.Context) {
	if a.cfg.UsageInterval < 0 {
		return
	}
	t := time.NewTicker(a.cfg.UsageInterval)
	defer t.Stop()
	samples := map[string]cpuSample{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := map[string]bool{}
		for _, inst := range a.cache.all() {
			uid := inst.Metadata.UID
			if inst.Status.Phase != api.PhaseRunning || inst.Status.StartedAt == nil || inst.Metadata.DeletionTimestamp != nil {
				continue
			}
			ur, ok := a.cfg.Drivers.Get(inst.Status.Driver).(driver.UsageReader)
			if !ok {
				continue
			}
			cpu, err := ur.CPUTime(ctx, uid)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Debug("read CPU time", "instance", instanceKey(inst), "err", err)
				}
				continue
			}
			seen[uid] = true
			cur := cpuSample{startedAt: *inst.Status.StartedAt, cpu: cpu, at: time.Now()}
			prev, had := samples[uid]
			samples[uid] = cur
			if !had || !prev.startedAt.Equal(cur.startedAt) {
				continue // a new run: its first sample is the baseline
			}
			mc, pct, ok := cpuUsage(prev, cur, inst.Spec.Resources.VCPUs)
			if !ok {
				continue
			}
			u := api.Usage{CPUMillicores: mc, CPUPercent: pct, SampledAt: cur.at.UTC().Round(time.Millisecond)}
			if usageWorthWriting(inst.Status.Usage, u) {
				a.writeUsage(ctx, inst, u)
			}
		}
		for uid := range samples {
			if !seen[uid] {
				delete(samples, uid)
			}
		}
	}
}

// writeUsage writes u into the status of inst, unless the instance is no
// longer running.
func (a *Agent) writeUsage(ctx context.Context, inst *api.Instance, u api.Usage) {
	r := &instanceRun{a: a, inst: inst, gen: inst.Status.ObservedGeneration}
	_, err := r.update(ctx, func(s *api.InstanceStatus) {
		if s.Phase == api.PhaseRunning {
			s.Usage = &u
		}
	})
	if err != nil && ctx.Err() == nil {
		a.log.Debug("write usage", "instance", instanceKey(inst), "err", err)
	}
}

// Package usage samples the CPU use of the instances an agent runs
// (docs/healing.md). Every interval it reads the total CPU time of the
// running instances from their drivers (driver.UsageReader), turns the
// difference to the previous sample into millicores and a percentage of
// the instance's vCPUs, and hands it to a Writer when it moved by more
// than Delta percentage points since the value last written, or when that
// value is Refresh old. An instance writes usage at most once per
// interval.
package usage

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// Defaults of usage sampling.
const (
	// DefaultInterval is how often CPU time is sampled.
	DefaultInterval = 10 * time.Second
	// Refresh is the age at which an unchanged usage is written again,
	// so readers can tell a fresh sample from a stale one.
	Refresh = 30 * time.Second
	// Delta is the change in CPU percent that is worth a write.
	Delta = 5.0
)

// Instances lists the instances assigned to the host; the sampler reads
// them and never changes them.
type Instances interface {
	All() []*api.Instance
}

// Writer writes a new usage into an instance's status.
type Writer interface {
	WriteUsage(ctx context.Context, inst *api.Instance, u api.Usage)
}

// Config configures a Sampler.
type Config struct {
	// Interval is how often CPU time is sampled; negative disables.
	Interval  time.Duration
	Instances Instances
	Drivers   *driver.Registry
	Writer    Writer
	Logger    *slog.Logger
}

// Sampler samples the running instances' CPU time. Build it with New and
// run it with Run.
type Sampler struct {
	cfg Config
}

// New returns a sampler; it does nothing until Run.
func New(cfg Config) *Sampler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sampler{cfg: cfg}
}

// sample is one reading of an instance's CPU time.
type sample struct {
	startedAt time.Time // the run sampled
	cpu       time.Duration
	at        time.Time
}

// cpuUsage computes the usage between two samples of an instance with
// vcpus: millicores (CPU seconds per second × 1000) and that as a percent
// of its vCPUs, 0–100. ok is false when the samples cannot be compared
// (no time passed, or the counter went back).
func cpuUsage(prev, cur sample, vcpus int) (millicores int64, percent float64, ok bool) {
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

// worthWriting reports whether u should replace last (nil if none was
// written).
func worthWriting(last *api.Usage, u api.Usage) bool {
	return last == nil || math.Abs(u.CPUPercent-last.CPUPercent) > Delta ||
		u.SampledAt.Sub(last.SampledAt) >= Refresh
}

// Run samples every interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	if s.cfg.Interval <= 0 {
		return
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	samples := map[string]sample{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := map[string]bool{}
		for _, inst := range s.cfg.Instances.All() {
			if cur, ok := s.sample(ctx, inst); ok {
				uid := inst.Metadata.UID
				seen[uid] = true
				prev, had := samples[uid]
				samples[uid] = cur
				if had && prev.startedAt.Equal(cur.startedAt) { // else a new run: its first sample is the baseline
					s.compare(ctx, inst, prev, cur)
				}
			}
		}
		for uid := range samples {
			if !seen[uid] {
				delete(samples, uid)
			}
		}
	}
}

// sample reads the CPU time of inst if it is running and its driver can
// tell.
func (s *Sampler) sample(ctx context.Context, inst *api.Instance) (sample, bool) {
	if inst.Status.Phase != api.PhaseRunning || inst.Status.StartedAt == nil || inst.Metadata.DeletionTimestamp != nil {
		return sample{}, false
	}
	ur, ok := s.cfg.Drivers.Get(inst.Status.Driver).(driver.UsageReader)
	if !ok {
		return sample{}, false
	}
	cpu, err := ur.CPUTime(ctx, inst.Metadata.UID)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Debug("read CPU time", "instance", inst.Metadata.Project+"/"+inst.Metadata.Name, "err", err)
		}
		return sample{}, false
	}
	return sample{startedAt: *inst.Status.StartedAt, cpu: cpu, at: time.Now()}, true
}

// compare writes the usage between two samples of inst when it is worth
// writing.
func (s *Sampler) compare(ctx context.Context, inst *api.Instance, prev, cur sample) {
	mc, pct, ok := cpuUsage(prev, cur, inst.Spec.Resources.VCPUs)
	if !ok {
		return
	}
	u := api.Usage{CPUMillicores: mc, CPUPercent: pct, SampledAt: cur.at.UTC().Round(time.Millisecond)}
	if worthWriting(inst.Status.Usage, u) {
		s.cfg.Writer.WriteUsage(ctx, inst, u)
	}
}

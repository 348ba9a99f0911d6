// Package health probes the instances an agent runs (docs/healing.md). An
// instance whose spec.healthCheck is of kind tcp or http is probed every
// interval from the router namespace of its first interface's network on
// the host (package probe dials from there). failureThreshold failures in
// a row make it unhealthy, one success healthy. The verdict is kept in
// memory and written as condition Healthy with the instance's next status
// write (Condition); when the verdict changes, the Checker asks its
// Reporter for a write. Without a check, or with kind running, Healthy
// follows Ready.
package health

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/probe"
)

// Reasons of the Healthy condition.
const (
	ReasonProbing        = "Probing"
	ReasonProbeSucceeded = "ProbeSucceeded"
	ReasonProbeFailed    = "ProbeFailed"
)

// DefaultTick is how often the Checker looks for instances due a probe.
const DefaultTick = 250 * time.Millisecond

// maxInFlight bounds the probes running at once.
const maxInFlight = 16

// errNoTarget is the probe failure of an instance the host has no network
// path to.
var errNoTarget = errors.New("no network path to probe the instance: its first interface is not on a network applied on this host")

// ProbeFunc runs one health probe of ip from the network namespace at
// nsPath (probe.Check).
type ProbeFunc func(ctx context.Context, nsPath, ip string, hc api.HealthCheck) error

// Instances lists the instances assigned to the host; the Checker reads
// them and never changes them.
type Instances interface {
	All() []*api.Instance
}

// Targets says where an instance is probed from: the network namespace
// that reaches it and its address.
type Targets interface {
	ProbeTarget(inst *api.Instance) (nsPath, ip string, ok bool)
}

// Reporter writes the status of the instance with uid, so that it
// carries the new verdict (the write calls Condition).
type Reporter interface {
	WriteHealth(ctx context.Context, uid string)
}

// Config configures a Checker.
type Config struct {
	Instances Instances
	Targets   Targets
	Reporter  Reporter
	// Probe runs one probe; default probe.Check.
	Probe ProbeFunc
	// Tick is how often due probes are started; default DefaultTick.
	Tick time.Duration
}

// Checker schedules the health probes and keeps their verdicts. Build it
// with New and run it with Run.
type Checker struct {
	cfg Config

	mu       sync.Mutex
	verdicts map[string]*verdict // by instance uid
}

// New returns a Checker; it probes nothing until Run.
func New(cfg Config) *Checker {
	if cfg.Probe == nil {
		cfg.Probe = probe.Check
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	return &Checker{cfg: cfg, verdicts: map[string]*verdict{}}
}

// verdict is what the probes of one run of an instance concluded.
type verdict struct {
	startedAt time.Time // the run probed (status.startedAt)
	known     bool      // a verdict was reached
	healthy   bool
	message   string // of the transition
	failures  int    // in a row
	next      time.Time
	inFlight  bool
}

// get returns a copy of the verdict of uid for the run that started at
// startedAt.
func (c *Checker) get(uid string, startedAt time.Time) (verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verdicts[uid]
	if !ok || !v.startedAt.Equal(startedAt) || !v.known {
		return verdict{}, false
	}
	return *v, true
}

// Condition returns the Healthy condition of next (the status about to be
// written for inst), given its Ready condition.
func (c *Checker) Condition(inst *api.Instance, next *api.InstanceStatus, ready api.Condition) api.Condition {
	hc := inst.Spec.HealthCheck
	cond := api.Condition{Type: api.ConditionHealthy, Status: ready.Status, Reason: ready.Reason, Message: ready.Message}
	if !probe.Probes(hc) || !ready.Status {
		return cond
	}
	var started time.Time
	if next.StartedAt != nil {
		started = *next.StartedAt
	}
	if v, ok := c.get(inst.Metadata.UID, started); ok {
		if v.healthy {
			return api.Condition{Type: api.ConditionHealthy, Status: true, Reason: ReasonProbeSucceeded, Message: v.message}
		}
		return api.Condition{Type: api.ConditionHealthy, Status: false, Reason: ReasonProbeFailed, Message: v.message}
	}
	// No verdict in memory (the agent restarted): keep what the probes
	// said of this same run, else wait for them.
	prev := api.FindCondition(inst.Status.Conditions, api.ConditionHealthy)
	sameRun := inst.Status.StartedAt != nil && next.StartedAt != nil && inst.Status.StartedAt.Equal(*next.StartedAt)
	if prev != nil && sameRun && (prev.Reason == ReasonProbeSucceeded || prev.Reason == ReasonProbeFailed) {
		return api.Condition{Type: api.ConditionHealthy, Status: prev.Status, Reason: prev.Reason, Message: prev.Message}
	}
	return api.Condition{Type: api.ConditionHealthy, Status: false, Reason: ReasonProbing, Message: "waiting for the first successful health probe"}
}

// Run probes the instances with health checks when they are due, until
// ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	sem := make(chan struct{}, maxInFlight)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		seen := map[string]bool{}
		for _, inst := range c.cfg.Instances.All() {
			uid := inst.Metadata.UID
			hc := inst.Spec.HealthCheck
			if !probe.Probes(hc) || inst.Status.Phase != api.PhaseRunning || inst.Status.StartedAt == nil ||
				inst.Metadata.DeletionTimestamp != nil {
				continue
			}
			seen[uid] = true
			if !c.due(uid, *inst.Status.StartedAt, now, probe.Interval(*hc)) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				c.release(uid) // too many in flight: next tick
				continue
			}
			go func() {
				defer func() { <-sem }()
				c.probeOnce(ctx, inst)
			}()
		}
		c.prune(seen)
	}
}

// due reports whether uid is due for a probe, and if so marks one in
// flight and schedules the next. A new run (startedAt) starts afresh.
func (c *Checker) due(uid string, startedAt, now time.Time, interval time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verdicts[uid]
	if !ok || !v.startedAt.Equal(startedAt) {
		v = &verdict{startedAt: startedAt}
		c.verdicts[uid] = v
	}
	if v.inFlight || now.Before(v.next) {
		return false
	}
	v.inFlight, v.next = true, now.Add(interval)
	return true
}

// release ends an in-flight mark without a result.
func (c *Checker) release(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.verdicts[uid]; ok {
		v.inFlight, v.next = false, time.Time{}
	}
}

// prune forgets the verdicts of instances no longer probed.
func (c *Checker) prune(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid := range c.verdicts {
		if !keep[uid] {
			delete(c.verdicts, uid)
		}
	}
}

// record stores a probe result and reports whether the verdict changed.
func (c *Checker) record(uid string, startedAt time.Time, err error, threshold int, target string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verdicts[uid]
	if !ok || !v.startedAt.Equal(startedAt) {
		return false // the run changed meanwhile
	}
	v.inFlight = false
	if err == nil {
		v.failures = 0
		if v.known && v.healthy {
			return false
		}
		v.known, v.healthy, v.message = true, true, "health probe of "+target+" succeeded"
		return true
	}
	v.failures++
	if v.failures < threshold || (v.known && !v.healthy) {
		return false
	}
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	v.known, v.healthy, v.message = true, false, msg
	return true
}

// probeOnce probes inst and has its status written when the verdict
// changes.
func (c *Checker) probeOnce(ctx context.Context, inst *api.Instance) {
	uid, hc := inst.Metadata.UID, *inst.Spec.HealthCheck
	started := *inst.Status.StartedAt
	nsPath, ip, ok := c.cfg.Targets.ProbeTarget(inst)
	var err error
	target := ip
	if !ok {
		err = errNoTarget
	} else {
		err = c.cfg.Probe(ctx, nsPath, ip, hc)
	}
	if hc.Port > 0 {
		target = ip + ":" + strconv.Itoa(hc.Port)
	}
	if ctx.Err() != nil {
		return
	}
	if !c.record(uid, started, err, probe.FailureThreshold(hc), target) {
		return
	}
	c.cfg.Reporter.WriteHealth(ctx, uid)
}

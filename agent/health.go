package agent

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/probe"
)

// Health checks (docs/healing.md). An instance whose spec.healthCheck is
// of kind tcp or http is probed every interval from the router namespace
// of its first interface's network on this host. failureThreshold
// failures in a row make it unhealthy, one success healthy. The verdict
// is kept in memory and written as condition Healthy with the next status
// write (the probe loop writes one when the verdict changes). Without a
// check, or with kind running, Healthy follows Running.

// Reasons of the Healthy condition.
const (
	ReasonProbing        = "Probing"
	ReasonProbeSucceeded = "ProbeSucceeded"
	ReasonProbeFailed    = "ProbeFailed"
)

// errNoProbeTarget is the probe failure of an instance the host has no
// network path to.
var errNoProbeTarget = errors.New("no network path to probe the instance: its first interface is not on a network applied on this host")

// ProbeFunc runs one health probe of ip from the network namespace at
// nsPath (probe.Check).
type ProbeFunc func(ctx context.Context, nsPath, ip string, hc api.HealthCheck) error

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

// healthState holds the verdicts by instance uid.
type healthState struct {
	mu       sync.Mutex
	verdicts map[string]*verdict
}

// get returns a copy of the verdict of uid for the run that started at
// startedAt.
func (h *healthState) get(uid string, startedAt time.Time) (verdict, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.verdicts[uid]
	if !ok || !v.startedAt.Equal(startedAt) || !v.known {
		return verdict{}, false
	}
	return *v, true
}

// healthCondition returns the Healthy condition of next (the status about
// to be written for inst), given its Ready condition.
func (a *Agent) healthCondition(inst *api.Instance, next *api.InstanceStatus, ready api.Condition) api.Condition {
	hc := inst.Spec.HealthCheck
	cond := api.Condition{Type: api.ConditionHealthy, Status: ready.Status, Reason: ready.Reason, Message: ready.Message}
	if !probe.Probes(hc) || !ready.Status {
		return cond
	}
	var started time.Time
	if next.StartedAt != nil {
		started = *next.StartedAt
	}
	if v, ok := a.health.get(inst.Metadata.UID, started); ok {
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

// probeTarget returns where to probe inst from: the router namespace of
// its first interface's network, and the interface address.
func (a *Agent) probeTarget(inst *api.Instance) (nsPath, ip string, ok bool) {
	if len(inst.Status.Interfaces) == 0 {
		return "", "", false
	}
	ip = inst.Status.Interfaces[0].IP
	p, found := a.net.port(inst.Metadata.UID)
	if !found {
		return "", "", false
	}
	nsPath, ok = p.routers[ip]
	return nsPath, ip, ok
}

// healthLoop probes the instances with health checks when they are due.
func (a *Agent) healthLoop(ctx context.Context) {
	t := time.NewTicker(a.healthTick)
	defer t.Stop()
	sem := make(chan struct{}, 16) // probes in flight
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		seen := map[string]bool{}
		for _, inst := range a.cache.all() {
			uid := inst.Metadata.UID
			hc := inst.Spec.HealthCheck
			if !probe.Probes(hc) || inst.Status.Phase != api.PhaseRunning || inst.Status.StartedAt == nil ||
				inst.Metadata.DeletionTimestamp != nil {
				continue
			}
			seen[uid] = true
			if !a.probeDue(uid, *inst.Status.StartedAt, now, probe.Interval(*hc)) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				a.health.release(uid) // too many in flight: next tick
				continue
			}
			go func() {
				defer func() { <-sem }()
				a.probeOnce(ctx, inst)
			}()
		}
		a.health.prune(seen)
	}
}

// probeDue reports whether uid is due for a probe, and if so marks one in
// flight and schedules the next. A new run (startedAt) starts afresh.
func (a *Agent) probeDue(uid string, startedAt, now time.Time, interval time.Duration) bool {
	h := &a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.verdicts == nil {
		h.verdicts = map[string]*verdict{}
	}
	v, ok := h.verdicts[uid]
	if !ok || !v.startedAt.Equal(startedAt) {
		v = &verdict{startedAt: startedAt}
		h.verdicts[uid] = v
	}
	if v.inFlight || now.Before(v.next) {
		return false
	}
	v.inFlight, v.next = true, now.Add(interval)
	return true
}

// release ends an in-flight mark without a result.
func (h *healthState) release(uid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.verdicts[uid]; ok {
		v.inFlight, v.next = false, time.Time{}
	}
}

// prune forgets the verdicts of instances no longer probed.
func (h *healthState) prune(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid := range h.verdicts {
		if !keep[uid] {
			delete(h.verdicts, uid)
		}
	}
}

// record stores a probe result and reports whether the verdict changed.
func (h *healthState) record(uid string, startedAt time.Time, err error, threshold int, target string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.verdicts[uid]
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

// probeOnce probes inst and writes its status when the verdict changes.
func (a *Agent) probeOnce(ctx context.Context, inst *api.Instance) {
	uid, hc := inst.Metadata.UID, *inst.Spec.HealthCheck
	started := *inst.Status.StartedAt
	nsPath, ip, ok := a.probeTarget(inst)
	var err error
	target := ip
	if !ok {
		err = errNoProbeTarget
	} else {
		err = a.probe(ctx, nsPath, ip, hc)
	}
	if hc.Port > 0 {
		target = ip + ":" + strconv.Itoa(hc.Port)
	}
	if ctx.Err() != nil {
		return
	}
	if !a.health.record(uid, started, err, probe.FailureThreshold(hc), target) {
		return
	}
	a.writeHealth(ctx, uid)
}

// writeHealth writes the status of uid so that it carries the verdict.
func (a *Agent) writeHealth(ctx context.Context, uid string) {
	cur, ok := a.cache.byUIDCopy(uid)
	if !ok {
		return
	}
	r := &instanceRun{a: a, inst: cur, gen: cur.Status.ObservedGeneration}
	changed, err := r.update(ctx, func(*api.InstanceStatus) {})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("write health", "instance", instanceKey(cur), "err", err)
			a.queue.Add(instanceKey(cur)) // its next reconcile writes it
		}
		return
	}
	if changed {
		c := api.FindCondition(r.inst.Status.Conditions, api.ConditionHealthy)
		if c != nil && c.Status {
			a.event(ctx, r.inst, api.EventNormal, "Healthy", c.Message)
		} else if c != nil {
			a.event(ctx, r.inst, api.EventWarning, "Unhealthy", c.Message)
		}
	}
}

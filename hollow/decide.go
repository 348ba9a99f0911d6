package hollow

import (
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// decide returns the next status a hollow host reports for an instance,
// one step at a time, and whether it differs from the current one. It is
// a pure function of the instance: the host writes the step, reads back
// what it wrote, and asks again until nothing changes.
//
//	not placed on this host ──────────────────────▶ nothing
//	deletionTimestamp ────────────────────────────▶ Terminated
//	Terminated, Failed ───────────────────────────▶ nothing (not ours to revive)
//	Pending, Scheduled ───────────────────────────▶ Provisioning
//	wants running:  Provisioning … Stopped ───────▶ Running
//	                Running + reboot asked ───────▶ Running (restartCount+1)
//	wants stopped:  Provisioning … Running ───────▶ Stopped
//
// Every step also records the spec generation it acted on.
func decide(in *api.Instance, host string, now time.Time) (api.InstanceStatus, bool) {
	cur := in.Status
	if cur.Host == "" || cur.Host != host {
		return cur, false
	}
	next := cur
	next.Conditions = slices.Clone(cur.Conditions)
	next.ObservedGeneration = max(cur.ObservedGeneration, in.Metadata.Generation)
	now = now.UTC().Round(0)

	wants := in.WantsRunning()
	reboot := in.Spec.RebootRequests > cur.ObservedReboots
	switch {
	case in.Metadata.DeletionTimestamp != nil:
		if cur.Phase != api.PhaseTerminated {
			setPhase(&next, api.PhaseTerminated, now)
			next.FinishedAt = &now
		}
	case cur.Phase == api.PhaseTerminated || cur.Phase == api.PhaseFailed:
		return cur, false
	case cur.Phase == "" || cur.Phase == api.PhasePending || cur.Phase == api.PhaseScheduled:
		setPhase(&next, api.PhaseProvisioning, now)
	case wants && cur.Phase == api.PhaseRunning:
		if reboot {
			setPhase(&next, api.PhaseRunning, now)
			next.RestartCount++
			next.StartedAt = &now
			next.ObservedReboots = in.Spec.RebootRequests
		}
	case wants:
		setPhase(&next, api.PhaseRunning, now)
		next.StartedAt = &now
		next.FinishedAt, next.ExitCode = nil, nil
		next.ObservedReboots = max(cur.ObservedReboots, in.Spec.RebootRequests)
	case cur.Phase != api.PhaseStopped:
		setPhase(&next, api.PhaseStopped, now)
		next.FinishedAt = &now
	}
	return next, !sameStatus(&cur, &next)
}

// setPhase sets the phase with an empty reason and message, and the Ready
// condition (true only when Running), as the real agent reports them.
func setPhase(s *api.InstanceStatus, phase api.InstancePhase, now time.Time) {
	s.Phase, s.Reason, s.Message = phase, "", ""
	ready := api.Condition{Type: api.ConditionReady, Status: phase == api.PhaseRunning}
	if !ready.Status {
		ready.Reason = string(phase)
	}
	s.Conditions = api.SetCondition(s.Conditions, ready, now)
}

// sameStatus reports whether a and b say the same, field by field; times
// compare as instants.
func sameStatus(a, b *api.InstanceStatus) bool {
	return a.Phase == b.Phase && a.Reason == b.Reason && a.Message == b.Message &&
		a.ObservedGeneration == b.ObservedGeneration && a.ObservedReboots == b.ObservedReboots &&
		a.RestartCount == b.RestartCount && sameTime(a.StartedAt, b.StartedAt) &&
		sameTime(a.FinishedAt, b.FinishedAt) && sameInt(a.ExitCode, b.ExitCode) &&
		slices.EqualFunc(a.Conditions, b.Conditions, func(x, y api.Condition) bool {
			return x.Type == y.Type && x.Status == y.Status && x.Reason == y.Reason &&
				x.Message == y.Message && x.LastTransitionTime.Equal(y.LastTransitionTime)
		})
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func sameInt(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

package group

import (
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Rollout event reasons, recorded on the group.
const (
	EventRolloutStarted  = "RolloutStarted"
	EventRolloutComplete = "RolloutComplete"
	EventRolloutPaused   = "RolloutPaused"
	EventRolloutResumed  = "RolloutResumed"
)

// ReasonProgressDeadline starts the rollout reason of a rollout that
// paused because no member became available in time.
const ReasonProgressDeadline = "ProgressDeadlineExceeded"

// RolloutInput is what the rollout state machine looks at.
type RolloutInput struct {
	// Prev is the group's stored status (Rollout, RolloutReason,
	// RolloutProgressTime).
	Prev api.InstanceGroupStatus
	// NewRevision: a new template revision was recorded in this pass.
	NewRevision bool
	Revision    int64
	// Paused is spec.paused.
	Paused bool
	// Old counts live members of older templates; CurrentAvailable the
	// available members of the current one.
	Old, CurrentAvailable, Desired int
	// Progressed: one more current member became available since the
	// controller last looked.
	Progressed bool
	Deadline   time.Duration
	Now        time.Time
	// Blocker describes the first current member that is not available:
	// "<name> not healthy: <why>".
	Blocker string
}

// RolloutEvent is an event the state machine asks for.
type RolloutEvent struct {
	Type, Reason, Message string
}

// RolloutOutput is the next rollout state.
type RolloutOutput struct {
	State, Reason string
	ProgressTime  *time.Time
	Events        []RolloutEvent
	// PauseSpec: the progress deadline passed, so spec.paused is to be
	// set; `ouro group rollout resume` clears it.
	PauseSpec bool
	// Recheck, when positive, is when the deadline would pass.
	Recheck time.Duration
}

// NextRollout moves the rollout state machine one step:
//
//	new revision ─▶ Progressing (progress time = now)
//	Progressing ─┬▶ Complete   no old member left, desired current ones available
//	             ├▶ Paused     spec.paused
//	             └▶ Paused     no progress for the deadline (and spec.paused is set)
//	Paused ──────┬▶ Complete   as above (an undo may complete at once)
//	             └▶ Progressing spec.paused cleared (progress time = now)
//
// Progress is one more member of the current template becoming
// available.
func NextRollout(in RolloutInput) RolloutOutput {
	out := RolloutOutput{State: in.Prev.Rollout, Reason: in.Prev.RolloutReason, ProgressTime: in.Prev.RolloutProgressTime}
	now := in.Now.UTC()
	if in.NewRevision || out.State == "" {
		out.State, out.Reason, out.ProgressTime = api.RolloutProgressing, "", &now
		out.Events = append(out.Events, RolloutEvent{api.EventNormal, EventRolloutStarted,
			fmt.Sprintf("rolling out revision %d to %d members", in.Revision, in.Desired)})
	}
	complete := in.Old == 0 && in.CurrentAvailable >= in.Desired
	done := func() {
		out.State, out.Reason = api.RolloutComplete, ""
		out.Events = append(out.Events, RolloutEvent{api.EventNormal, EventRolloutComplete,
			fmt.Sprintf("revision %d is rolled out: %d members available", in.Revision, in.CurrentAvailable)})
	}
	switch out.State {
	case api.RolloutProgressing:
		switch {
		case complete:
			done()
		case in.Paused:
			out.State, out.Reason = api.RolloutPaused, "paused by the user"
			out.Events = append(out.Events, RolloutEvent{api.EventNormal, EventRolloutPaused,
				fmt.Sprintf("rollout of revision %d paused by the user", in.Revision)})
		case in.Progressed || out.ProgressTime == nil:
			out.ProgressTime = &now
			out.Recheck = in.Deadline
		default:
			left := out.ProgressTime.Add(in.Deadline).Sub(now)
			if left > 0 {
				out.Recheck = left
				break
			}
			out.State, out.PauseSpec = api.RolloutPaused, true
			out.Reason = ReasonProgressDeadline + ": " + in.Blocker
			out.Events = append(out.Events, RolloutEvent{api.EventWarning, EventRolloutPaused,
				fmt.Sprintf("rollout of revision %d made no progress for %s: %s", in.Revision, in.Deadline, in.Blocker)})
		}
	case api.RolloutPaused:
		switch {
		case complete:
			done()
		case !in.Paused:
			out.State, out.Reason, out.ProgressTime = api.RolloutProgressing, "", &now
			out.Recheck = in.Deadline
			out.Events = append(out.Events, RolloutEvent{api.EventNormal, EventRolloutResumed,
				fmt.Sprintf("rollout of revision %d resumed", in.Revision)})
		}
	}
	return out
}

package group

import (
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestNextRollout(t *testing.T) {
	const deadline = time.Minute
	earlier := t0.Add(-30 * time.Second)
	longAgo := t0.Add(-2 * time.Minute)
	prev := func(state, reason string, progress *time.Time) api.InstanceGroupStatus {
		return api.InstanceGroupStatus{Rollout: state, RolloutReason: reason, RolloutProgressTime: progress}
	}
	tests := []struct {
		name         string
		in           RolloutInput
		wantState    string
		wantReason   string // prefix
		wantEvents   string
		wantPause    bool
		wantProgress *time.Time
		wantRecheck  time.Duration
	}{
		{"new revision starts", RolloutInput{Prev: prev(api.RolloutComplete, "", &longAgo), NewRevision: true, Old: 3, Desired: 3},
			api.RolloutProgressing, "", "RolloutStarted", false, &t0, deadline},
		{"new revision already in place", RolloutInput{Prev: prev(api.RolloutComplete, "", nil), NewRevision: true, CurrentAvailable: 3, Desired: 3},
			api.RolloutComplete, "", "RolloutStarted RolloutComplete", false, &t0, 0},
		{"complete", RolloutInput{Prev: prev(api.RolloutProgressing, "", &earlier), CurrentAvailable: 3, Desired: 3},
			api.RolloutComplete, "", "RolloutComplete", false, &earlier, 0},
		{"old member left", RolloutInput{Prev: prev(api.RolloutProgressing, "", &earlier), Old: 1, CurrentAvailable: 3, Desired: 3},
			api.RolloutProgressing, "", "", false, &earlier, 30 * time.Second},
		{"progress moves the clock", RolloutInput{Prev: prev(api.RolloutProgressing, "", &longAgo), Old: 1, CurrentAvailable: 2, Desired: 3, Progressed: true},
			api.RolloutProgressing, "", "", false, &t0, deadline},
		{"deadline passed", RolloutInput{Prev: prev(api.RolloutProgressing, "", &longAgo), Old: 1, CurrentAvailable: 2, Desired: 3,
			Blocker: "web-3 not healthy: connection refused"},
			api.RolloutPaused, "ProgressDeadlineExceeded: web-3 not healthy: connection refused", "RolloutPaused", true, &longAgo, 0},
		{"paused by the user", RolloutInput{Prev: prev(api.RolloutProgressing, "", &earlier), Paused: true, Old: 2, Desired: 3},
			api.RolloutPaused, "paused by the user", "RolloutPaused", false, &earlier, 0},
		{"stays paused", RolloutInput{Prev: prev(api.RolloutPaused, "ProgressDeadlineExceeded: x", &longAgo), Paused: true, Old: 2, Desired: 3},
			api.RolloutPaused, "ProgressDeadlineExceeded: x", "", false, &longAgo, 0},
		{"resumed", RolloutInput{Prev: prev(api.RolloutPaused, "ProgressDeadlineExceeded: x", &longAgo), Old: 2, Desired: 3},
			api.RolloutProgressing, "", "RolloutResumed", false, &t0, deadline},
		{"paused but complete after an undo", RolloutInput{Prev: prev(api.RolloutPaused, "x", &longAgo), Paused: true, CurrentAvailable: 3, Desired: 3},
			api.RolloutComplete, "", "RolloutComplete", false, &longAgo, 0},
		{"complete stays complete when a member dies", RolloutInput{Prev: prev(api.RolloutComplete, "", &longAgo), CurrentAvailable: 2, Desired: 3},
			api.RolloutComplete, "", "", false, &longAgo, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now, in.Deadline, in.Revision = t0, deadline, 2
			out := NextRollout(in)
			var evs []string
			for _, e := range out.Events {
				evs = append(evs, e.Reason)
			}
			if out.State != tt.wantState || !strings.HasPrefix(out.Reason, tt.wantReason) || (tt.wantReason == "" && out.Reason != "") {
				t.Errorf("state %q reason %q, want %q %q", out.State, out.Reason, tt.wantState, tt.wantReason)
			}
			if got := strings.Join(evs, " "); got != tt.wantEvents {
				t.Errorf("events %q, want %q", got, tt.wantEvents)
			}
			if out.PauseSpec != tt.wantPause {
				t.Errorf("PauseSpec = %v", out.PauseSpec)
			}
			if (out.ProgressTime == nil) != (tt.wantProgress == nil) || (out.ProgressTime != nil && !out.ProgressTime.Equal(*tt.wantProgress)) {
				t.Errorf("progress time %v, want %v", out.ProgressTime, tt.wantProgress)
			}
			if out.Recheck != tt.wantRecheck {
				t.Errorf("recheck %v, want %v", out.Recheck, tt.wantRecheck)
			}
		})
	}
}

func TestPausedEventSaysWhy(t *testing.T) {
	longAgo := t0.Add(-time.Hour)
	out := NextRollout(RolloutInput{Prev: api.InstanceGroupStatus{Rollout: api.RolloutProgressing, RolloutProgressTime: &longAgo},
		Revision: 4, Old: 1, Desired: 2, Deadline: time.Minute, Now: t0, Blocker: "web-5 not healthy: HTTP 500"})
	if len(out.Events) != 1 || out.Events[0].Type != api.EventWarning || !strings.Contains(out.Events[0].Message, "web-5 not healthy: HTTP 500") {
		t.Errorf("events = %+v", out.Events)
	}
}

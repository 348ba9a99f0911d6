package hollow

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestDecide(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	inst := func(phase api.InstancePhase, mods ...func(*api.Instance)) *api.Instance {
		in := &api.Instance{
			Metadata: api.ObjectMeta{Name: "a", Project: "p", Generation: 1, ResourceVersion: "7"},
			Spec:     api.InstanceSpec{PowerState: api.PowerOn},
			Status:   api.InstanceStatus{Phase: phase, Host: "hollow-1", Driver: "container", ObservedGeneration: 1},
		}
		for _, m := range mods {
			m(in)
		}
		return in
	}
	stopped := func(in *api.Instance) { in.Spec.PowerState = api.PowerOff }
	deleted := func(in *api.Instance) { in.Metadata.DeletionTimestamp = &earlier }
	startedEarlier := func(in *api.Instance) { in.Status.StartedAt = &earlier }

	tests := []struct {
		name        string
		in          *api.Instance
		wantChange  bool
		wantPhase   api.InstancePhase
		wantReady   bool
		wantRestart int32
	}{
		{name: "placed elsewhere", in: inst(api.PhaseScheduled, func(in *api.Instance) { in.Status.Host = "other" }), wantPhase: api.PhaseScheduled},
		{name: "not placed", in: inst(api.PhasePending, func(in *api.Instance) { in.Status.Host = "" }), wantPhase: api.PhasePending},
		{name: "scheduled provisions", in: inst(api.PhaseScheduled), wantChange: true, wantPhase: api.PhaseProvisioning},
		{name: "pending provisions", in: inst(api.PhasePending), wantChange: true, wantPhase: api.PhaseProvisioning},
		{name: "provisioning runs", in: inst(api.PhaseProvisioning), wantChange: true, wantPhase: api.PhaseRunning, wantReady: true},
		{name: "starting runs", in: inst(api.PhaseStarting), wantChange: true, wantPhase: api.PhaseRunning, wantReady: true},
		{name: "running stays", in: inst(api.PhaseRunning, startedEarlier, func(in *api.Instance) {
			in.Status.Conditions = []api.Condition{{Type: api.ConditionReady, Status: true, LastTransitionTime: earlier}}
		}), wantPhase: api.PhaseRunning, wantReady: true},
		{name: "stop asked", in: inst(api.PhaseRunning, stopped), wantChange: true, wantPhase: api.PhaseStopped},
		{name: "stopped stays", in: inst(api.PhaseStopped, stopped), wantPhase: api.PhaseStopped},
		{name: "start asked", in: inst(api.PhaseStopped), wantChange: true, wantPhase: api.PhaseRunning, wantReady: true},
		{name: "provisioning but stopped", in: inst(api.PhaseProvisioning, stopped), wantChange: true, wantPhase: api.PhaseStopped},
		{name: "reboot asked", in: inst(api.PhaseRunning, startedEarlier, func(in *api.Instance) { in.Spec.RebootRequests = 1 }),
			wantChange: true, wantPhase: api.PhaseRunning, wantReady: true, wantRestart: 1},
		{name: "deleted terminates", in: inst(api.PhaseRunning, deleted), wantChange: true, wantPhase: api.PhaseTerminated},
		{name: "deleted before provisioning", in: inst(api.PhaseScheduled, deleted), wantChange: true, wantPhase: api.PhaseTerminated},
		{name: "terminated stays", in: inst(api.PhaseTerminated, deleted, func(in *api.Instance) { in.Status.FinishedAt = &earlier }), wantPhase: api.PhaseTerminated},
		{name: "failed is left alone", in: inst(api.PhaseFailed), wantPhase: api.PhaseFailed},
		{name: "new generation observed", in: inst(api.PhaseRunning, startedEarlier, func(in *api.Instance) {
			in.Metadata.Generation = 2
			in.Status.Conditions = []api.Condition{{Type: api.ConditionReady, Status: true, LastTransitionTime: earlier}}
		}), wantChange: true, wantPhase: api.PhaseRunning, wantReady: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.in.Status
			got, changed := decide(tt.in, "hollow-1", now)
			if changed != tt.wantChange {
				t.Errorf("changed = %v, want %v (status %+v)", changed, tt.wantChange, got)
			}
			if got.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", got.Phase, tt.wantPhase)
			}
			if got.RestartCount != tt.wantRestart {
				t.Errorf("restartCount = %d, want %d", got.RestartCount, tt.wantRestart)
			}
			if !sameStatus(&before, &tt.in.Status) {
				t.Errorf("decide changed its input: %+v → %+v", before, tt.in.Status)
			}
			if !changed {
				return
			}
			if got.ObservedGeneration != tt.in.Metadata.Generation {
				t.Errorf("observedGeneration = %d, want %d", got.ObservedGeneration, tt.in.Metadata.Generation)
			}
			ready := api.FindCondition(got.Conditions, api.ConditionReady)
			if ready == nil || ready.Status != tt.wantReady {
				t.Errorf("Ready condition = %+v, want status %v", ready, tt.wantReady)
			}
			if got.Phase == api.PhaseRunning && tt.in.Status.Phase != api.PhaseRunning && (got.StartedAt == nil || !got.StartedAt.Equal(now)) {
				t.Errorf("startedAt = %v, want %v", got.StartedAt, now)
			}
			if got.Host != tt.in.Status.Host || got.Driver != tt.in.Status.Driver {
				t.Errorf("host/driver changed: %s/%s", got.Host, got.Driver)
			}
		})
	}
}

// TestDecideConverges follows decide from Scheduled as a host would (write
// the step, decide again) and checks that it settles on Running in two
// steps and then stays.
func TestDecideConverges(t *testing.T) {
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "a", Generation: 1},
		Status: api.InstanceStatus{Phase: api.PhaseScheduled, Host: "h"}}
	var phases []api.InstancePhase
	for range 10 {
		next, changed := decide(in, "h", time.Now())
		if !changed {
			break
		}
		in.Status = next
		phases = append(phases, next.Phase)
	}
	want := []api.InstancePhase{api.PhaseProvisioning, api.PhaseRunning}
	if len(phases) != len(want) || phases[0] != want[0] || phases[1] != want[1] {
		t.Fatalf("steps = %v, want %v", phases, want)
	}
	if _, changed := decide(in, "h", time.Now().Add(time.Hour)); changed {
		t.Errorf("a Running instance changed again later: %+v", in.Status)
	}
}

package agent

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

func TestAssignedInstanceRuns(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))

	inst := h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	if c := api.FindCondition(inst.Status.Conditions, api.ConditionReady); c == nil || !c.Status {
		t.Errorf("Ready condition = %+v, want true", c)
	}
	if inst.Status.StartedAt == nil {
		t.Error("startedAt not set")
	}
	if inst.Status.ObservedGeneration != inst.Metadata.Generation {
		t.Errorf("observedGeneration = %d, want %d", inst.Status.ObservedGeneration, inst.Metadata.Generation)
	}
	if got := h.drv.opsFor(uid); !slices.Equal(got[:2], []string{"create", "start"}) {
		t.Errorf("driver calls = %v, want create then start", got)
	}
	h.drv.mu.Lock()
	spec := h.drv.specs[uid]
	h.drv.mu.Unlock()
	if spec.Name != "web" || spec.Project != "demo" || len(spec.Image.Layers) != 1 || spec.Resources.MemoryMiB != 64 {
		t.Errorf("driver spec = %+v", spec)
	}
	waitFor(t, "Started event", func() bool { return slices.Contains(h.eventReasons(t, "web"), "Started") })
}

func TestStopAndStartAgain(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.PowerState = api.PowerOff })
	inst := h.waitInstance(t, key, "Stopped", phaseIs(api.PhaseStopped))
	if inst.Status.Reason != "" {
		t.Errorf("reason = %q, want none for a stop the user asked for", inst.Status.Reason)
	}
	if c := api.FindCondition(inst.Status.Conditions, api.ConditionReady); c == nil || c.Status {
		t.Errorf("Ready condition = %+v, want false", c)
	}
	if got := h.drv.state(uid); got != driver.StateStopped {
		t.Errorf("driver state = %q, want stopped", got)
	}
	waitFor(t, "Stopped event", func() bool { return slices.Contains(h.eventReasons(t, "web"), "Stopped") })

	// The stop was ours: powering on again starts it without a reboot request.
	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.PowerState = api.PowerOn })
	h.waitInstance(t, key, "Running again", phaseIs(api.PhaseRunning))
	if n := h.drv.count("start", uid); n != 2 {
		t.Errorf("start called %d times, want 2", n)
	}
}

func TestReboot(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.RebootRequests++ })
	inst := h.waitInstance(t, key, "rebooted", func(i *api.Instance) bool { return i.Status.ObservedReboots == 1 })
	if inst.Status.Phase != api.PhaseRunning || inst.Status.RestartCount != 1 {
		t.Errorf("after reboot: phase %s restartCount %d, want Running and 1", inst.Status.Phase, inst.Status.RestartCount)
	}
	if got := h.drv.opsFor(uid); !slices.Equal(got, []string{"create", "start", "stop", "start"}) {
		t.Errorf("driver calls = %v, want create start stop start", got)
	}
	waitFor(t, "Rebooted event", func() bool { return slices.Contains(h.eventReasons(t, "web"), "Rebooted") })
}

func TestDeletion(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.updateSpec(t, key, func(i *api.Instance) {
		now := time.Now()
		i.Metadata.DeletionTimestamp = &now
		i.Status.Phase = api.PhaseTerminating
	})
	// The fake instance controller removes the object once it is Terminated.
	waitFor(t, "instance removed", func() bool { return h.get(t, key) == nil })
	if h.drv.has(uid) {
		t.Error("driver still has the instance")
	}
	if h.drv.count("delete", uid) == 0 {
		t.Error("Delete not called")
	}
	// The event may be posted just after the object is gone.
	waitFor(t, "Terminated event", func() bool { return slices.Contains(h.eventReasons(t, "web"), "Terminated") })
}

func TestExitedProcessIsReportedNotRestarted(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	in := newInstance("job")
	in.Spec.RestartPolicy = api.RestartNever
	key, uid := h.place(t, in)
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.drv.exit(uid, 3)
	inst := h.waitInstance(t, key, "Exited", func(i *api.Instance) bool { return i.Status.Reason == api.ReasonExited })
	if inst.Status.Phase != api.PhaseStopped || inst.Status.ExitCode == nil || *inst.Status.ExitCode != 3 || inst.Status.FinishedAt == nil {
		t.Errorf("status = %+v, want Stopped with exit code 3 and finishedAt", inst.Status)
	}
	waitFor(t, "Exited event", func() bool { return slices.Contains(h.eventReasons(t, "job"), api.ReasonExited) })
	reconciles := h.reconciles(key)
	waitFor(t, "another reconcile", func() bool {
		h.updateSpec(t, key, func(i *api.Instance) { i.Metadata.Labels = map[string]string{"poke": "1"} })
		return h.reconciles(key) > reconciles
	})
	if n := h.drv.count("start", uid); n != 1 {
		t.Fatalf("start called %d times, want 1: no automatic restart", n)
	}

	// The API's start action bumps rebootRequests: that starts it again.
	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.RebootRequests++ })
	inst = h.waitInstance(t, key, "Running again", phaseIs(api.PhaseRunning))
	if inst.Status.ObservedReboots != 1 || inst.Status.ExitCode != nil {
		t.Errorf("status = %+v, want observedReboots 1 and no exit code", inst.Status)
	}
}

func TestAgentRestartAdoptsRunningInstance(t *testing.T) {
	h := newHarness(t)
	stop := h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	stop()
	before := h.drv.opsFor(uid)
	joins := h.joins()

	// Lose the status write the first agent made last, as if it died
	// just before it.
	h.edit(t, key, func(i *api.Instance) { i.Status.Phase = api.PhaseStarting })

	h.mu.Lock()
	h.reconciled = map[string]int{}
	h.mu.Unlock()
	h.start(t, h.config())
	inst := h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	// A change by someone else (the agent's own writes coming back are
	// no reason to look again): a second look.
	n := h.reconciles(key)
	h.edit(t, key, func(i *api.Instance) { i.Metadata.Labels = map[string]string{"poke": "1"} })
	waitFor(t, "a second reconcile by the new agent", func() bool { return h.reconciles(key) > n })
	if got := h.drv.opsFor(uid); !slices.Equal(got, before) {
		t.Errorf("driver calls after restart = %v, want none beyond %v", got[len(before):], before)
	}
	if inst.Status.RestartCount != 0 {
		t.Errorf("restartCount = %d, want 0", inst.Status.RestartCount)
	}
	if j := h.joins(); j != joins {
		t.Errorf("agent joined again (%d joins, want %d): it should reuse its credentials", j, joins)
	}
}

func TestOrphanDeletedOnlyAfterSuccessfulList(t *testing.T) {
	h := newHarness(t)
	key, uid := h.place(t, newInstance("web"))
	h.updateSpec(t, key, func(i *api.Instance) { i.Status.Phase = api.PhaseRunning })
	h.drv.put(uid, driver.StateRunning)
	h.drv.put("uid-orphan", driver.StateRunning)
	h.failLists(true)

	h.start(t, h.config())
	waitFor(t, "failed lists", func() bool { return h.lists() >= 3 })
	if !h.drv.has("uid-orphan") {
		t.Fatal("orphan deleted although no list succeeded")
	}

	h.failLists(false)
	waitFor(t, "orphan deleted", func() bool { return !h.drv.has("uid-orphan") })
	if !h.drv.has(uid) || h.drv.count("delete", uid) != 0 {
		t.Error("the assigned instance was deleted")
	}
}

func TestProvisioningFailures(t *testing.T) {
	tests := []struct {
		name       string
		image      string // spec.image
		createErr  error
		wantReason string
		fix        func(t *testing.T, h *harness)
	}{
		{
			name: "missing image", image: "demo/later", wantReason: api.ReasonImageFetchFailed,
			fix: func(t *testing.T, h *harness) { h.addImage(t, "later") },
		},
		{
			name: "layer fetch", image: "demo/busybox", wantReason: api.ReasonImageFetchFailed,
			createErr: fmt.Errorf("extract layer: %w", &fetchError{"sha256:aa", errors.New("connection reset")}),
			fix:       func(_ *testing.T, h *harness) { h.drv.setCreateErr(nil) },
		},
		{
			name: "driver", image: "demo/busybox", wantReason: api.ReasonDriverError,
			createErr: errors.New("no space left on device"),
			fix:       func(_ *testing.T, h *harness) { h.drv.setCreateErr(nil) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.drv.setCreateErr(tt.createErr)
			h.start(t, h.config())
			in := newInstance("web")
			in.Spec.Image = tt.image
			key, _ := h.place(t, in)

			// Image fetch failures back off in Provisioning; other
			// failures are Failed (and retried by the queue).
			wantPhase := api.PhaseFailed
			wantEvent := tt.wantReason
			if tt.wantReason == api.ReasonImageFetchFailed {
				wantPhase, wantEvent = api.PhaseProvisioning, "BackOff"
			}
			inst := h.waitInstance(t, key, string(wantPhase)+"/"+tt.wantReason, func(i *api.Instance) bool {
				return i.Status.Phase == wantPhase && i.Status.Reason == tt.wantReason
			})
			if inst.Status.Message == "" {
				t.Errorf("status = %s/%s without a message", inst.Status.Phase, inst.Status.Reason)
			}
			if tt.wantReason == api.ReasonImageFetchFailed && (inst.Status.NextRestartAt == nil || !strings.Contains(inst.Status.Message, "retrying in")) {
				t.Errorf("back-off not reported: nextRestartAt %v, message %q", inst.Status.NextRestartAt, inst.Status.Message)
			}
			waitFor(t, "failure event", func() bool { return slices.Contains(h.eventReasons(t, "web"), wantEvent) })

			tt.fix(t, h)
			inst = h.waitInstance(t, key, "Running after a retry", phaseIs(api.PhaseRunning))
			if inst.Status.Reason != "" || inst.Status.Message != "" || inst.Status.NextRestartAt != nil {
				t.Errorf("reason %q message %q nextRestartAt %v not cleared by success", inst.Status.Reason, inst.Status.Message, inst.Status.NextRestartAt)
			}
		})
	}
}

func TestUnknownDriverFails(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	in := newInstance("vm1")
	in.Status.Driver = "vm"
	key, _ := h.place(t, in)
	inst := h.waitInstance(t, key, "Failed", phaseIs(api.PhaseFailed))
	if inst.Status.Reason != api.ReasonDriverError {
		t.Errorf("reason = %q, want DriverError", inst.Status.Reason)
	}
}

func TestStatusConflictIsRetried(t *testing.T) {
	h := newHarness(t)
	// Someone else writes the instance just before each of the first
	// three status writes: the server refuses them as stale.
	conflicts := 3
	h.mu.Lock()
	h.beforeServe = func(r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/projects/demo/instances/web/status" {
			return
		}
		h.mu.Lock()
		bump := conflicts > 0
		conflicts--
		h.mu.Unlock()
		if !bump {
			return
		}
		var in api.Instance
		err := h.api.Store.Get(r.Context(), api.InstanceKind, "demo", "web", &in)
		if err == nil {
			err = h.api.Store.Update(r.Context(), &in)
		}
		if err != nil {
			t.Errorf("write demo/web before a status write: %v", err)
		}
	}
	h.mu.Unlock()
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	if n := h.drv.count("start", uid); n != 1 {
		t.Errorf("start called %d times, want 1", n)
	}
}

func TestInstanceMovedAwayIsRemoved(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.remove(t, key)
	waitFor(t, "driver instance removed", func() bool { return !h.drv.has(uid) })
}

func TestOrderNICs(t *testing.T) {
	a := driver.NIC{MAC: "0a:58:0a:00:00:01", Tap: "ourpa"}
	b := driver.NIC{MAC: "0a:58:0a:00:00:02", Tap: "ourpb"}
	c := driver.NIC{MAC: "0a:58:0a:00:00:03", Tap: "ourpc"}
	// The host network lists networks by name; the instance's first
	// attachment is its primary interface.
	ifcs := []api.Interface{{Network: "zeta", MAC: "0A:58:0A:00:00:02"}, {Network: "alpha", MAC: "0a:58:0a:00:00:01"}}
	got := orderNICs([]driver.NIC{a, c, b}, ifcs)
	if want := []driver.NIC{b, a, c}; !reflect.DeepEqual(got, want) {
		t.Errorf("orderNICs = %v, want %v", got, want)
	}
	if got := orderNICs(nil, ifcs); len(got) != 0 {
		t.Errorf("no ports: %v", got)
	}
}

package agent

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

func TestFinalizerHold(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	del := now.Add(-10 * time.Minute)
	old := now.Add(-2 * time.Hour)
	for _, tc := range []struct {
		name       string
		deleted    *time.Time
		finalizers []string
		want       time.Duration
	}{
		{"not deleted", nil, []string{api.FinalizerLoadBalancer}, 0},
		{"no finalizers", &del, nil, 0},
		{"held", &del, []string{api.FinalizerLoadBalancer}, 50 * time.Minute},
		{"hold expired", &old, []string{api.FinalizerLoadBalancer}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := newInstance("web")
			inst.Metadata.DeletionTimestamp, inst.Metadata.Finalizers = tc.deleted, tc.finalizers
			if got := finalizerHold(inst, now); got != tc.want {
				t.Errorf("finalizerHold = %v, want %v", got, tc.want)
			}
		})
	}
}

// A deleted instance keeps running while a finalizer holds it, and is
// torn down once the finalizer is removed.
func TestDeleteWaitsForFinalizers(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	before := h.reconciles(key)
	h.edit(t, key, func(i *api.Instance) {
		now := time.Now().UTC()
		i.Metadata.DeletionTimestamp = &now
		i.Metadata.Finalizers = []string{api.FinalizerLoadBalancer}
		i.Status.Phase = api.PhaseTerminating
	})
	waitFor(t, "a reconcile of the deleted instance", func() bool { return h.reconciles(key) > before })
	if got := h.drv.state(uid); got != driver.StateRunning {
		t.Fatalf("driver state while held = %q, want running", got)
	}
	if n := h.drv.count("delete", uid); n != 0 {
		t.Fatalf("driver delete called %d times while a finalizer holds the instance", n)
	}
	if inst := h.get(t, key); inst == nil || inst.Status.Phase == api.PhaseTerminated {
		t.Fatalf("instance while held = %+v, want it kept and not Terminated", inst)
	}

	h.edit(t, key, func(i *api.Instance) { i.Metadata.Finalizers = nil })
	waitFor(t, "instance removed", func() bool { return h.get(t, key) == nil })
	if n := h.drv.count("delete", uid); n == 0 {
		t.Error("driver delete not called after the finalizer went")
	}
}

// A finalizer holds the teardown at most MaxFinalizerHold from the
// deletion timestamp.
func TestFinalizerHoldExpires(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.edit(t, key, func(i *api.Instance) {
		long := time.Now().UTC().Add(-MaxFinalizerHold - time.Minute)
		i.Metadata.DeletionTimestamp = &long
		i.Metadata.Finalizers = []string{api.FinalizerLoadBalancer}
	})
	h.waitInstance(t, key, "Terminated", phaseIs(api.PhaseTerminated))
	if n := h.drv.count("delete", uid); n == 0 {
		t.Error("driver delete not called after the hold expired")
	}
}

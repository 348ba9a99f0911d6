package agent

import (
	"context"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// resettingDriver is a fakeDriver that reboots in place, like a VM.
type resettingDriver struct{ *fakeDriver }

var _ driver.Rebooter = resettingDriver{}

func (d resettingDriver) Reboot(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("reboot", id)
	return nil
}

func TestRebootInPlaceWhenTheDriverCan(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Drivers = driver.NewRegistry()
	cfg.Drivers.Register(resettingDriver{h.drv})
	h.start(t, cfg)
	key, uid := h.place(t, newInstance("vm"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))

	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.RebootRequests++ })
	inst := h.waitInstance(t, key, "rebooted", func(i *api.Instance) bool { return i.Status.ObservedReboots == 1 })
	if inst.Status.Phase != api.PhaseRunning || inst.Status.RestartCount != 1 {
		t.Errorf("after reboot: phase %s restartCount %d, want Running and 1", inst.Status.Phase, inst.Status.RestartCount)
	}
	if got := h.drv.opsFor(uid); !slices.Equal(got, []string{"create", "start", "reboot"}) {
		t.Errorf("driver calls = %v, want create start reboot", got)
	}
}

func TestCloudInitDataReachesTheDriver(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Labels = map[string]string{api.LabelZone: "rack-2"}
	h.start(t, cfg)
	in := newInstance("vm")
	in.Spec.PublicKeys = []string{"ssh-ed25519 AAAA alice"}
	in.Spec.UserData = "#cloud-config\n"
	key, uid := h.place(t, in)
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	h.drv.mu.Lock()
	spec := h.drv.specs[uid]
	h.drv.mu.Unlock()
	if !slices.Equal(spec.PublicKeys, in.Spec.PublicKeys) || spec.UserData != in.Spec.UserData || spec.Zone != "rack-2" {
		t.Errorf("driver spec keys %v user data %q zone %q", spec.PublicKeys, spec.UserData, spec.Zone)
	}
}

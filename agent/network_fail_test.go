package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// failingPlane fails the networks in fail, as netplane does: the others
// are applied and the error joins one *netplane.NetworkError per failure.
type failingPlane struct {
	mu   sync.Mutex
	fail map[string]bool // network UID
}

func (p *failingPlane) Apply(_ context.Context, spec api.HostNetworkSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, n := range spec.Networks {
		if p.fail[n.UID] {
			errs = append(errs, &netplane.NetworkError{UID: n.UID, Name: n.Name, VNI: n.VNI,
				Err: fmt.Errorf("create ourx%d: file exists", n.VNI)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	return nil
}

func (p *failingPlane) NetNSPath(uid string) string  { return "/run/netns/test-" + uid }
func (p *failingPlane) RouterNSPath(vni int) string  { return fmt.Sprintf("/run/netns/test-n%d", vni) }
func (p *failingPlane) PortDevice(uid string) string { return "tap-" + uid }

// TestNetworkFailureHoldsOnlyItsInstances: a network that cannot be set
// up holds back its instances, which say why (reason, Ready condition,
// event), while the instances of the other network start; the host
// network's status names the failed network.
func TestNetworkFailureHoldsOnlyItsInstances(t *testing.T) {
	h := newHarness(t)
	web := newInstance("web")
	web.Status.Interfaces = []api.Interface{{Network: "blocked", MAC: "0a:58:0a:01:00:05", IP: "10.1.0.5"}}
	db := newInstance("db")
	db.Status.Interfaces = []api.Interface{{Network: "good", MAC: "0a:58:0a:02:00:05", IP: "10.2.0.5"}}
	webKey, _ := h.place(t, web)
	dbKey, _ := h.place(t, db)
	// As the network controller leaves the host's networks.
	h.api.Create(t, &api.HostNetwork{
		Metadata: api.ObjectMeta{Name: testHost},
		Spec: api.HostNetworkSpec{Networks: []api.HostNetworkEntry{
			{UID: "net-blocked", Name: "blocked", Project: "demo", VNI: 5002, CIDR: "10.1.0.0/24", Gateway: "10.1.0.1",
				Ports: []api.HostPort{{Instance: web.Metadata.UID, Name: "web", MAC: web.Status.Interfaces[0].MAC, IP: "10.1.0.5"}}},
			{UID: "net-good", Name: "good", Project: "demo", VNI: 5001, CIDR: "10.2.0.0/24", Gateway: "10.2.0.1",
				Ports: []api.HostPort{{Instance: db.Metadata.UID, Name: "db", MAC: db.Status.Interfaces[0].MAC, IP: "10.2.0.5"}}},
		}},
	})
	status := func() api.HostNetworkStatus {
		return h.api.Get(t, api.HostNetworkKind, "", testHost).(*api.HostNetwork).Status
	}
	plane := &failingPlane{fail: map[string]bool{"net-blocked": true}}
	cfg := h.config()
	cfg.Network = plane
	h.start(t, cfg)

	h.waitInstance(t, dbKey, "Running on the network that works", phaseIs(api.PhaseRunning))
	got := h.waitInstance(t, webKey, "held back with a reason", func(i *api.Instance) bool {
		return i.Status.Reason == api.ReasonNetworkUnavailable
	})
	if got.Status.Phase != api.PhaseScheduled {
		t.Errorf("held-back instance is %s, want still Scheduled", got.Status.Phase)
	}
	for _, want := range []string{"blocked", "file exists", testHost} {
		if !strings.Contains(got.Status.Message, want) {
			t.Errorf("message %q lacks %q", got.Status.Message, want)
		}
	}
	if c := api.FindCondition(got.Status.Conditions, api.ConditionReady); c == nil || c.Status || c.Reason != api.ReasonNetworkUnavailable {
		t.Errorf("Ready condition %+v, want false with reason %s", c, api.ReasonNetworkUnavailable)
	}
	waitFor(t, "a NetworkUnavailable event", func() bool {
		for _, r := range h.eventReasons(t, "web") {
			if r == api.ReasonNetworkUnavailable {
				return true
			}
		}
		return false
	})
	waitFor(t, "the failed network in the host network status", func() bool {
		st := status()
		return !st.Applied && len(st.Failed) == 1 && st.Failed[0].UID == "net-blocked" && st.Failed[0].Name == "blocked"
	})

	// The network can be set up again: its instance starts.
	plane.mu.Lock()
	plane.fail = nil
	plane.mu.Unlock()
	h.waitInstance(t, webKey, "Running once its network is up", phaseIs(api.PhaseRunning))
	waitFor(t, "the host network applied", func() bool {
		st := status()
		return st.Applied && len(st.Failed) == 0
	})
}

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

// gatedPlane applies everything at once, but holds ApplyPorts until
// release is closed.
type gatedPlane struct {
	failingPlane
	entered chan struct{} // closed when ApplyPorts is called
	release chan struct{}
	once    sync.Once
}

func (p *gatedPlane) ApplyPorts(ctx context.Context, _ api.HostNetworkSpec, _ []string) error {
	p.once.Do(func() { close(p.entered) })
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestNewPortCreatesButDoesNotStart: while a new instance's ports are
// being set up alone (hostnet.PortPlane), the agent creates the instance
// but starts it only once they are in place.
func TestNewPortCreatesButDoesNotStart(t *testing.T) {
	h := newHarness(t)
	port := func(inst *api.Instance) api.HostPort {
		return api.HostPort{Instance: inst.Metadata.UID, Name: inst.Metadata.Name, MAC: inst.Status.Interfaces[0].MAC, IP: inst.Status.Interfaces[0].IP}
	}
	entry := func(ports ...api.HostPort) api.HostNetworkSpec {
		return api.HostNetworkSpec{Networks: []api.HostNetworkEntry{{UID: "net-1", Name: "default", Project: "demo",
			VNI: 5001, CIDR: "10.2.0.0/24", Gateway: "10.2.0.1", Ports: ports}}}
	}
	db := newInstance("db")
	db.Status.Interfaces = []api.Interface{{Network: "default", MAC: "0a:58:0a:02:00:05", IP: "10.2.0.5"}}
	dbKey, _ := h.place(t, db)
	h.api.Create(t, &api.HostNetwork{Metadata: api.ObjectMeta{Name: testHost}, Spec: entry(port(db))})
	plane := &gatedPlane{entered: make(chan struct{}), release: make(chan struct{})}
	cfg := h.config()
	cfg.Network = plane
	h.start(t, cfg)
	h.waitInstance(t, dbKey, "Running", phaseIs(api.PhaseRunning))

	web := newInstance("web")
	web.Status.Interfaces = []api.Interface{{Network: "default", MAC: "0a:58:0a:02:00:06", IP: "10.2.0.6"}}
	webKey, webUID := h.place(t, web)
	web.Metadata.UID = webUID
	hn := h.api.Get(t, api.HostNetworkKind, "", testHost).(*api.HostNetwork)
	hn.Spec = entry(port(db), port(web))
	hn.Metadata.Generation++
	if err := h.api.Store.Update(context.Background(), hn); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new port applied alone", func() bool {
		select {
		case <-plane.entered:
			return true
		default:
			return false
		}
	})
	waitFor(t, "web created while its ports are set up", func() bool { return h.drv.count("create", webUID) == 1 })
	// One more reconcile of web ends after the one that created it.
	h.mu.Lock()
	n := h.reconciled[webKey]
	h.mu.Unlock()
	h.edit(t, webKey, func(i *api.Instance) { i.Metadata.Labels = map[string]string{"poke": "1"} })
	waitFor(t, "web reconciled again", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.reconciled[webKey] > n
	})
	if n := h.drv.count("start", webUID); n != 0 {
		t.Fatalf("web started %d times before its ports were in place", n)
	}
	close(plane.release)
	h.waitInstance(t, webKey, "Running once its ports are in place", phaseIs(api.PhaseRunning))
}

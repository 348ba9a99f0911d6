package network

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

const waitLimit = 20 * time.Second

// TestControllerOverEtcd runs the controller against a real etcd: host
// networks appear, follow a moving instance and its floating IP, are not
// rewritten when nothing they hold changed, and go with their host.
func TestControllerOverEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	cli := etcdtest.Client(t)
	raw := store.NewEtcd(cli)
	st := raw.WithGuard(etcdtest.NewGuard(t, cli, "/test/leader"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	create := func(obj api.Object, claims ...string) {
		t.Helper()
		if _, err := raw.Create(ctx, obj, store.CreateOptions{Claims: claims}); err != nil {
			t.Fatalf("create %s %s: %v", obj.GetKind(), obj.Meta().Name, err)
		}
	}
	create(host("h1", "10.99.0.1"))
	create(host("h2", "10.99.0.2"))
	create(netw("p", "n", "", 4096, "10.0.0.0/24"), "vni/4096")
	create(group("p", "default", fromDefault))
	a := inst("p", "a", "h1", api.PhaseRunning, []string{"default"}, "n", "10.0.0.2")
	create(a)
	create(inst("p", "b", "h2", api.PhaseRunning, []string{"default"}, "n", "10.0.0.3"))
	create(fip("p", "f", "192.0.2.10", "a"))

	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	instances := cache.New(st, api.InstanceKind, 0, log)
	c := New(Options{Store: st, Hosts: hosts, Instances: instances, Logger: log, Recorder: record.New(st, "network-controller")})
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{hosts.Run, instances.Run, c.Run} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})

	getHN := func(name string) (*api.HostNetwork, bool) {
		var hn api.HostNetwork
		err := raw.Get(ctx, api.HostNetworkKind, "", name, &hn)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return &hn, true
	}
	portOf := func(hn *api.HostNetwork, name string) *api.HostPort {
		for _, e := range hn.Spec.Networks {
			for i := range e.Ports {
				if e.Ports[i].Name == name {
					return &e.Ports[i]
				}
			}
		}
		return nil
	}
	fipStatus := func() api.FloatingIPStatus {
		var f api.FloatingIP
		if err := raw.Get(ctx, api.FloatingIPKind, "p", "f", &f); err != nil {
			t.Fatal(err)
		}
		return f.Status
	}

	wait.For(t, waitLimit, "host networks of h1 and h2", func() bool {
		h1, ok1 := getHN("h1")
		h2, ok2 := getHN("h2")
		if !ok1 || !ok2 || len(h1.Spec.Networks) != 1 || len(h2.Spec.Networks) != 1 {
			return false
		}
		p := portOf(h1, "a")
		return p != nil && p.FloatingIP == "192.0.2.10" && h1.Spec.Networks[0].Peers[0] == "10.99.0.2" &&
			len(h1.Spec.Networks[0].Records) == 2 && portOf(h2, "b") != nil
	})
	wait.For(t, waitLimit, "floating IP status on h1", func() bool {
		return fipStatus() == api.FloatingIPStatus{Address: "192.0.2.10", Host: "h1", InstanceIP: "10.0.0.2"}
	})
	h1, _ := getHN("h1")

	// The instance moves to h2: its port and floating IP follow.
	if err := raw.Get(ctx, api.InstanceKind, "p", "a", a); err != nil {
		t.Fatal(err)
	}
	a.Status.Host = "h2"
	if err := raw.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitLimit, "a and its floating IP on h2", func() bool {
		h2, _ := getHN("h2")
		p := portOf(h2, "a")
		h1now, _ := getHN("h1")
		return p != nil && p.FloatingIP == "192.0.2.10" && len(h1now.Spec.Networks) == 0 &&
			h1now.Metadata.Generation == h1.Metadata.Generation+1 && fipStatus().Host == "h2"
	})
	h1, _ = getHN("h1")

	// A change that alters no spec of h1 does not rewrite it: a host label
	// first, then an instance on h2, whose arrival shows both were seen.
	var hh api.Host
	if err := raw.Get(ctx, api.HostKind, "", "h1", &hh); err != nil {
		t.Fatal(err)
	}
	hh.Metadata.Labels = map[string]string{"rack": "2"}
	if err := raw.Update(ctx, &hh); err != nil {
		t.Fatal(err)
	}
	create(inst("p", "c", "h2", api.PhaseRunning, []string{"default"}, "n", "10.0.0.4"))
	wait.For(t, waitLimit, "c on h2", func() bool {
		h2, _ := getHN("h2")
		return portOf(h2, "c") != nil
	})
	if again, _ := getHN("h1"); again.Metadata.ResourceVersion != h1.Metadata.ResourceVersion {
		t.Errorf("h1's host network was rewritten without a change: generation %d → %d", h1.Metadata.Generation, again.Metadata.Generation)
	}

	// A host that cannot set the network up reports it in its host
	// network's status: the network's Applied condition turns false and
	// names the host and cause, and true again once the host succeeds.
	var n api.Network
	if err := raw.Get(ctx, api.NetworkKind, "p", "n", &n); err != nil {
		t.Fatal(err)
	}
	reportFailed := func(failed []api.NetworkFailure) {
		t.Helper()
		hn, _ := getHN("h2")
		hn.Status = api.HostNetworkStatus{ObservedGeneration: hn.Metadata.Generation, Applied: len(failed) == 0, Failed: failed}
		if err := raw.Update(ctx, hn); err != nil {
			t.Fatal(err)
		}
	}
	applied := func() *api.Condition {
		var n api.Network
		if err := raw.Get(ctx, api.NetworkKind, "p", "n", &n); err != nil {
			t.Fatal(err)
		}
		return api.FindCondition(n.Status.Conditions, api.ConditionNetworkApplied)
	}
	reportFailed([]api.NetworkFailure{{UID: n.Metadata.UID, Name: "n", Message: "create ourx4096: file exists"}})
	wait.For(t, waitLimit, "network n not applied on h2", func() bool {
		c := applied()
		return c != nil && !c.Status && c.Reason == api.ReasonNetworkSetupFailed &&
			c.Message == "host h2: create ourx4096: file exists"
	})
	events := func(reason string) int {
		objs, _, err := raw.List(ctx, api.EventKind, "p", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for _, o := range objs {
			e := o.(*api.Event)
			if e.Object.Kind == api.NetworkKind.Name && e.Object.Name == "n" && e.Reason == reason {
				count++
			}
		}
		return count
	}
	wait.For(t, waitLimit, "a SetupFailed event on network n", func() bool { return events(api.ReasonNetworkSetupFailed) == 1 })
	reportFailed(nil)
	wait.For(t, waitLimit, "network n applied again", func() bool {
		c := applied()
		return c != nil && c.Status && c.Message == ""
	})
	wait.For(t, waitLimit, "a NetworkApplied event on network n", func() bool { return events("NetworkApplied") == 1 })

	// A deleted host loses its host network.
	if err := raw.Delete(ctx, api.HostKind, "", "h1", ""); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitLimit, "h1's host network deleted", func() bool {
		_, ok := getHN("h1")
		return !ok
	})
}

func TestQueueKeyString(t *testing.T) {
	tests := []struct {
		key  queueKey
		want string
	}{
		{everyKey, "every"},
		{hostKey("h1"), "host:h1"},
		{floatingIPKey("p/ip"), "fip:p/ip"},
		{queueKey{kind: 9, name: "x"}, "unknown(9):x"},
	}
	for _, tt := range tests {
		if got := tt.key.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestPlacementIsNotDebounced: with a debounce far longer than the test,
// a placement still reaches its host's network at once, the one change
// that a new instance waits for.
func TestPlacementIsNotDebounced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	cli := etcdtest.Client(t)
	raw := store.NewEtcd(cli)
	st := raw.WithGuard(etcdtest.NewGuard(t, cli, "/test/leader"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	create := func(obj api.Object, claims ...string) {
		t.Helper()
		if _, err := raw.Create(ctx, obj, store.CreateOptions{Claims: claims}); err != nil {
			t.Fatalf("create %s %s: %v", obj.GetKind(), obj.Meta().Name, err)
		}
	}
	create(host("h1", "10.99.0.1"))
	create(netw("p", "n", "", 4096, "10.0.0.0/24"), "vni/4096")
	create(group("p", "default", fromDefault))
	create(inst("p", "a", "h1", api.PhaseRunning, []string{"default"}, "n", "10.0.0.2"))

	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	instances := cache.New(st, api.InstanceKind, 0, log)
	c := New(Options{Store: st, Hosts: hosts, Instances: instances, Logger: log, Debounce: time.Hour})
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{hosts.Run, instances.Run, c.Run} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	ports := func() int {
		var hn api.HostNetwork
		if err := raw.Get(ctx, api.HostNetworkKind, "", "h1", &hn); err != nil {
			return -1
		}
		n := 0
		for _, e := range hn.Spec.Networks {
			n += len(e.Ports)
		}
		return n
	}
	// The first computation follows a quiet spell: at once.
	wait.For(t, waitLimit, "h1's network with a's port", func() bool { return ports() == 1 })

	create(inst("p", "b", "h1", api.PhaseScheduled, []string{"default"}, "n", "10.0.0.3"))
	wait.For(t, waitLimit, "h1's network with b's port too, within the hour's debounce", func() bool { return ports() == 2 })
}

package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

const waitLimit = 20 * time.Second

// events is a record.Sink that keeps the reasons it was told.
type events struct {
	mu      sync.Mutex
	reasons []string
}

func (e *events) Event(_ context.Context, _ api.Object, _, reason, _ string, _ ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reasons = append(e.reasons, reason)
}

func (e *events) has(reason string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.reasons, reason)
}

// rig runs the controller over a real etcd; objects are written with the
// raw store as the API server and the agents would.
type rig struct {
	t   *testing.T
	raw store.Interface
	ev  *events
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	cli := etcdtest.Client(t)
	raw := store.NewEtcd(cli)
	st := raw.WithGuard(etcdtest.NewGuard(t, cli, "/test/leader"))
	log := etcdtest.Quiet()
	r := &rig{t: t, raw: raw, ev: &events{}}
	ins := []*cache.Informer{
		cache.New(st, api.LoadBalancerKind, time.Second, log),
		cache.New(st, api.HostNetworkKind, time.Second, log),
		cache.New(st, api.HostKind, time.Second, log),
		cache.New(st, api.InstanceKind, time.Second, log),
	}
	c := New(Options{Store: st, LoadBalancers: ins[0], HostNetworks: ins[1], Hosts: ins[2], Instances: ins[3], Recorder: r.ev, Logger: log})
	for _, in := range ins {
		wait.Go(t, 10*time.Second, "informer", func(ctx context.Context) error { return in.Run(ctx) })
	}
	wait.Go(t, 10*time.Second, "controller", c.Run)
	return r
}

func (r *rig) create(obj api.Object) {
	r.t.Helper()
	if _, err := r.raw.Create(context.Background(), obj, store.CreateOptions{}); err != nil {
		r.t.Fatalf("create %s %s: %v", obj.GetKind().Name, obj.Meta().Name, err)
	}
}

// edit changes a stored object, reading it again on conflicts.
func (r *rig) edit(kind *api.Kind, project, name string, fn func(api.Object)) {
	r.t.Helper()
	for range 20 {
		obj := kind.New()
		if err := r.raw.Get(context.Background(), kind, project, name, obj); err != nil {
			r.t.Fatalf("get %s %s: %v", kind.Name, name, err)
		}
		fn(obj)
		err := r.raw.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrConflict) {
			r.t.Fatalf("update %s %s: %v", kind.Name, name, err)
		}
	}
	r.t.Fatalf("update %s %s: too many conflicts", kind.Name, name)
}

func (r *rig) lb(name string) *api.LoadBalancer {
	r.t.Helper()
	lb := &api.LoadBalancer{}
	if err := r.raw.Get(context.Background(), api.LoadBalancerKind, "p", name, lb); err != nil {
		r.t.Fatalf("get load balancer %s: %v", name, err)
	}
	return lb
}

func (r *rig) instance(name string) *api.Instance {
	r.t.Helper()
	in := &api.Instance{}
	if err := r.raw.Get(context.Background(), api.InstanceKind, "p", name, in); err != nil {
		r.t.Fatalf("get instance %s: %v", name, err)
	}
	return in
}

func (r *rig) waitLB(name, what string, cond func(*api.LoadBalancer) bool) *api.LoadBalancer {
	r.t.Helper()
	var lb *api.LoadBalancer
	wait.ForDetail(r.t, waitLimit, "load balancer "+name+" "+what, func() (bool, string) {
		lb = r.lb(name)
		return cond(lb), fmt.Sprintf("status %+v", lb.Status)
	})
	return lb
}

func (r *rig) waitFinalizer(name string, want bool) {
	r.t.Helper()
	wait.ForDetail(r.t, waitLimit, fmt.Sprintf("instance %s finalizer present=%v", name, want), func() (bool, string) {
		in := r.instance(name)
		return slices.Contains(in.Metadata.Finalizers, api.FinalizerLoadBalancer) == want, fmt.Sprintf("finalizers %v", in.Metadata.Finalizers)
	})
}

// health is what a host reports of member instance name.
func (r *rig) health(name, health string) api.HostLBMemberStatus {
	r.t.Helper()
	return api.HostLBMemberStatus{Pool: "web", Name: r.instance(name).Metadata.UID, Health: health}
}

// report writes what host reports of load balancer web.
func (r *rig) report(host string, rep api.HostLBStatus) {
	r.t.Helper()
	rep.UID = r.lb("web").Metadata.UID
	hn := &api.HostNetwork{}
	err := r.raw.Get(context.Background(), api.HostNetworkKind, "", host, hn)
	if errors.Is(err, store.ErrNotFound) {
		r.create(&api.HostNetwork{Metadata: api.ObjectMeta{Name: host}, Status: api.HostNetworkStatus{LoadBalancers: []api.HostLBStatus{rep}}})
		return
	}
	r.edit(api.HostNetworkKind, "", host, func(o api.Object) {
		o.(*api.HostNetwork).Status.LoadBalancers = []api.HostLBStatus{rep}
	})
}

func (r *rig) setHostPhase(name string, phase api.HostPhase) {
	r.t.Helper()
	r.edit(api.HostKind, "", name, func(o api.Object) { o.(*api.Host).Status.Phase = phase })
}

func (r *rig) deleteInstance(name string) {
	r.t.Helper()
	r.edit(api.InstanceKind, "p", name, func(o api.Object) {
		now := time.Now().UTC()
		in := o.(*api.Instance)
		in.Metadata.DeletionTimestamp = &now
		in.Status.Phase = api.PhaseTerminating
	})
}

// world creates hosts h1-h4 (Ready), instances web-0 … web-<n-1> of group
// web on h4, and load balancer web on two hosts for group web, created
// as the API server leaves it.
func (r *rig) world(n int, edit func(*api.LoadBalancer)) {
	r.t.Helper()
	for i := 1; i <= 4; i++ {
		r.create(testHost(fmt.Sprintf("h%d", i), api.HostReady))
	}
	for i := range n {
		r.create(member(fmt.Sprintf("web-%d", i), "web", "h4", fmt.Sprintf("10.0.0.%d", 10+i)))
	}
	lb := withPools(testLB(2), api.Pool{Name: "web", Group: "web", Port: 80})
	lb.Kind, lb.Metadata.Generation = api.LoadBalancerKind.Name, 0
	if edit != nil {
		edit(lb)
	}
	r.create(lb)
}

func memberOf(lb *api.LoadBalancer, name string) *api.LoadBalancerMember {
	for i := range lb.Status.Members {
		if lb.Status.Members[i].Instance == name {
			return &lb.Status.Members[i]
		}
	}
	return nil
}

func TestControllerPlacesAggregatesAndDrains(t *testing.T) {
	r := newRig(t)
	r.world(2, nil)

	lb := r.waitLB("web", "placed on two hosts", func(lb *api.LoadBalancer) bool {
		return len(lb.Status.Hosts) == 2 && len(lb.Status.Members) == 2
	})
	h := names(lb.Status.Hosts)
	if h[0] == h[1] {
		t.Fatalf("hosts = %v, want two different hosts", h)
	}
	if lb.Status.VRID != 1 || lb.Status.Phase != api.LBPending || lb.Status.Hosts[0].Address != "10.0.0.101" {
		t.Errorf("status = %+v", lb.Status)
	}
	r.waitFinalizer("web-0", true)
	r.waitFinalizer("web-1", true)

	// The hosts report: the second is active, web-1 is down.
	first, second := h[0], h[1]
	r.report(first, api.HostLBStatus{Ready: true, Members: []api.HostLBMemberStatus{r.health("web-0", api.HealthUp), r.health("web-1", api.HealthUp)}})
	r.report(second, api.HostLBStatus{Ready: true, Active: true, Members: []api.HostLBMemberStatus{r.health("web-0", api.HealthUp), r.health("web-1", api.HealthDown)}})
	lb = r.waitLB("web", "Active with member health", func(lb *api.LoadBalancer) bool {
		m0, m1 := memberOf(lb, "web-0"), memberOf(lb, "web-1")
		return lb.Status.Phase == api.LBActive && m0 != nil && m0.Health == api.HealthUp && m1 != nil && m1.Health == api.HealthDown
	})
	if !lb.Status.Hosts[1].Active || lb.Status.Hosts[0].Active {
		t.Errorf("hosts = %+v, want the second active", lb.Status.Hosts)
	}
	wait.For(t, waitLimit, "events", func() bool {
		return r.ev.has(ReasonMemberUp) && r.ev.has(ReasonMemberDown) && r.ev.has(ReasonActiveHostChanged) && r.ev.has(ReasonPlaced)
	})

	// web-0 leaves: draining, held until both hosts drained it.
	r.deleteInstance("web-0")
	r.waitLB("web", "web-0 draining", func(lb *api.LoadBalancer) bool {
		m := memberOf(lb, "web-0")
		return m != nil && m.State == api.MemberDraining
	})
	drainingRep := r.health("web-0", api.HealthUp)
	drainingRep.Sessions = 2
	drainedRep := drainingRep
	drainedRep.Sessions, drainedRep.Drained = 0, true
	r.report(first, api.HostLBStatus{Ready: true, Members: []api.HostLBMemberStatus{drainedRep, r.health("web-1", api.HealthUp)}})
	r.report(second, api.HostLBStatus{Ready: true, Active: true, Members: []api.HostLBMemberStatus{drainingRep, r.health("web-1", api.HealthUp)}})
	r.waitLB("web", "web-1 up", func(lb *api.LoadBalancer) bool {
		m := memberOf(lb, "web-1")
		return m != nil && m.Health == api.HealthUp
	})
	if in := r.instance("web-0"); !slices.Contains(in.Metadata.Finalizers, api.FinalizerLoadBalancer) {
		t.Fatal("web-0 released while a host still drains it")
	}
	r.report(second, api.HostLBStatus{Ready: true, Active: true, Members: []api.HostLBMemberStatus{drainedRep, r.health("web-1", api.HealthUp)}})
	r.waitFinalizer("web-0", false)

	// web-1 leaves the group: no longer a member, released at once.
	r.edit(api.InstanceKind, "p", "web-1", func(o api.Object) { o.(*api.Instance).Metadata.Labels[api.LabelGroup] = "other" })
	r.waitFinalizer("web-1", false)
	r.waitLB("web", "without web-1", func(lb *api.LoadBalancer) bool { return memberOf(lb, "web-1") == nil })
}

func TestControllerReleasesOnTimeoutLostHostAndDelete(t *testing.T) {
	r := newRig(t)
	r.world(3, func(lb *api.LoadBalancer) { lb.Spec.DrainTimeoutSeconds = 1 })
	for _, n := range []string{"web-0", "web-1", "web-2"} {
		r.waitFinalizer(n, true)
	}
	lb := r.waitLB("web", "placed", func(lb *api.LoadBalancer) bool { return len(lb.Status.Hosts) == 2 })
	for _, h := range lb.Status.Hosts {
		r.report(h.Name, api.HostLBStatus{Ready: true, Members: []api.HostLBMemberStatus{
			r.health("web-0", api.HealthUp), r.health("web-1", api.HealthUp),
		}})
	}
	r.waitLB("web", "hosts ready", func(lb *api.LoadBalancer) bool { return lb.Status.Phase == api.LBActive })

	// Never drained: released when the drain timeout passes.
	r.deleteInstance("web-0")
	r.waitFinalizer("web-0", false)
	if in := r.instance("web-0"); time.Since(*in.Metadata.DeletionTimestamp) < time.Second {
		t.Errorf("released %v after deletion, before the 1 s drain timeout", time.Since(*in.Metadata.DeletionTimestamp))
	}

	// Its host lost: released at once; the LB keeps the address of a
	// lost LB host it moves.
	r.edit(api.LoadBalancerKind, "p", "web", func(o api.Object) { o.(*api.LoadBalancer).Spec.DrainTimeoutSeconds = 3600 })
	r.deleteInstance("web-1")
	r.waitLB("web", "web-1 draining", func(lb *api.LoadBalancer) bool {
		m := memberOf(lb, "web-1")
		return m != nil && m.State == api.MemberDraining
	})
	lost := lb.Status.Hosts[0]
	r.setHostPhase(lost.Name, api.HostNotReady)
	r.setHostPhase("h4", api.HostNotReady)
	r.waitFinalizer("web-1", false)
	moved := r.waitLB("web", "moved off the lost host", func(lb *api.LoadBalancer) bool {
		return len(lb.Status.Hosts) == 2 && lb.Status.Hosts[0].Name != lost.Name
	})
	if a := moved.Status.Hosts[0]; a.Address != lost.Address || a.Priority != PriorityFirst || a.Name == moved.Status.Hosts[1].Name || a.Name == "h4" {
		t.Errorf("replacement = %+v (other %+v), want a third Ready host with address %s", a, moved.Status.Hosts[1], lost.Address)
	}
	wait.For(t, waitLimit, "HostReplaced event", func() bool { return r.ev.has(ReasonHostReplaced) })

	// The load balancer goes: its members are free.
	if err := r.raw.Delete(context.Background(), api.LoadBalancerKind, "p", "web", ""); err != nil {
		t.Fatal(err)
	}
	r.waitFinalizer("web-2", false)
}

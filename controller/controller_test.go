package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/hosthealth"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

const waitLimit = 20 * time.Second

// countingStore records the outcome of every write of the store it wraps.
type countingStore struct {
	store.Interface
	*counts
}

// counts are shared by a countingStore and its guarded views.
type counts struct {
	mu     sync.Mutex
	ok     int
	failed map[string][]error // by object name
}

func newCounting(st store.Interface) *countingStore {
	return &countingStore{Interface: st, counts: &counts{failed: map[string][]error{}}}
}

func (c *counts) note(name string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.ok++
	} else {
		c.failed[name] = append(c.failed[name], err)
	}
}

func (c *countingStore) Create(ctx context.Context, obj api.Object, opts store.CreateOptions) (bool, error) {
	existed, err := c.Interface.Create(ctx, obj, opts)
	c.note(obj.Meta().Name, err)
	return existed, err
}

func (c *countingStore) Update(ctx context.Context, obj api.Object) error {
	err := c.Interface.Update(ctx, obj)
	c.note(obj.Meta().Name, err)
	return err
}

func (c *countingStore) UpdateBatch(ctx context.Context, objs []api.Object) []error {
	errs := c.Interface.UpdateBatch(ctx, objs)
	for i, err := range errs {
		c.note(objs[i].Meta().Name, err)
	}
	return errs
}

func (c *countingStore) Delete(ctx context.Context, kind *api.Kind, project, name, rv string) error {
	err := c.Interface.Delete(ctx, kind, project, name, rv)
	c.note(name, err)
	return err
}

func (c *countingStore) WithGuard(g store.Guard) store.Interface {
	return &countingStore{Interface: c.Interface.WithGuard(g), counts: c.counts}
}

// writes returns the number of successful writes.
func (c *counts) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok
}

// failedWith reports whether a write of name failed with target.
func (c *counts) failedWith(name string, target error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.failed[name] {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// addHost registers a container host with cpu vCPUs and mem MiB, as the
// join endpoint would, and starts its heartbeat.
func addHost(t *testing.T, st store.Interface, name string, cpu int, mem int64, taints ...string) (stop func()) {
	t.Helper()
	h := &api.Host{
		Kind:     api.HostKind.Name,
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.HostSpec{Taints: taints},
		Status: api.HostStatus{
			Capacity:     api.Resources{VCPUs: cpu, MemoryMiB: mem, DiskGiB: 100},
			Drivers:      []string{"container"},
			Architecture: "amd64",
		},
	}
	if _, err := st.Create(context.Background(), h, store.CreateOptions{}); err != nil {
		t.Fatalf("create host %s: %v", name, err)
	}
	return etcdtest.Heartbeat(t, st.Presence(), name)
}

// addInstance creates a Pending container instance as the apiserver would.
func addInstance(t *testing.T, st store.Interface, name string, cpu int, mem int64, tolerations ...string) {
	t.Helper()
	inst := &api.Instance{
		Kind:     api.InstanceKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: "demo"},
		Spec: api.InstanceSpec{
			Image: "demo/busybox", Flavor: "custom",
			Resources:   api.Resources{VCPUs: cpu, MemoryMiB: mem, DiskGiB: 1},
			Tolerations: tolerations,
		},
		Status: api.InstanceStatus{Phase: api.PhasePending, Driver: "container"},
	}
	if _, err := st.Create(context.Background(), inst, store.CreateOptions{}); err != nil {
		t.Fatalf("create instance %s: %v", name, err)
	}
}

func getInstance(t *testing.T, st store.Interface, name string) (*api.Instance, bool) {
	t.Helper()
	var inst api.Instance
	err := st.Get(context.Background(), api.InstanceKind, "demo", name, &inst)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("get instance %s: %v", name, err)
	}
	return &inst, true
}

func getHost(t *testing.T, st store.Interface, name string) *api.Host {
	t.Helper()
	var h api.Host
	if err := st.Get(context.Background(), api.HostKind, "", name, &h); err != nil {
		t.Fatalf("get host %s: %v", name, err)
	}
	return &h
}

// hostOf waits until instance name is placed and returns its host.
func hostOf(t *testing.T, st store.Interface, name string) string {
	t.Helper()
	var host string
	wait.For(t, waitLimit, "instance "+name+" placed", func() bool {
		inst, ok := getInstance(t, st, name)
		if ok && inst.Status.Host != "" {
			if inst.Status.Phase != api.PhaseScheduled {
				t.Fatalf("placed instance %s has phase %s", name, inst.Status.Phase)
			}
			host = inst.Status.Host
			return true
		}
		return false
	})
	return host
}

// runLeader runs RunLeader on a guarded view of st until the test ends or
// the returned stop is called; stop waits for RunLeader to return.
func runLeader(t *testing.T, st store.Interface, g store.Guard) (stop func()) {
	t.Helper()
	return wait.Go(t, waitLimit, "RunLeader", func(ctx context.Context) error {
		return RunLeader(ctx, st.WithGuard(g), Config{Logger: etcdtest.Quiet(), Resync: time.Second})
	})
}

func TestPlacesSpreadsAndWaitsForCapacity(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	for i := range 3 {
		addHost(t, st, fmt.Sprintf("host-%d", i), 4, 8192)
	}
	addHost(t, st, "hollow-0", 1000, 1<<20, api.TaintHollow)
	runLeader(t, st, etcdtest.NewGuard(t, cli, "/test/leader"))
	for _, n := range []string{"host-0", "host-1", "host-2", "hollow-0"} {
		wait.For(t, waitLimit, n+" Ready", func() bool { return getHost(t, st, n).Status.Phase == api.HostReady })
	}
	for i := range 6 {
		addInstance(t, st, fmt.Sprintf("web-%d", i), 1, 1024)
	}
	addInstance(t, st, "huge", 16, 4096)

	perHost := map[string]int{}
	for i := range 6 {
		perHost[hostOf(t, st, fmt.Sprintf("web-%d", i))]++
	}
	for i := range 3 {
		if n := perHost[fmt.Sprintf("host-%d", i)]; n != 2 {
			t.Errorf("host-%d got %d instances, want 2 (spread): %v", i, n, perHost)
		}
	}
	if perHost["hollow-0"] != 0 {
		t.Errorf("hollow host got %d instances without toleration", perHost["hollow-0"])
	}

	// Too big for every host: Pending with InsufficientCapacity.
	wait.For(t, waitLimit, "huge marked unschedulable", func() bool {
		inst, _ := getInstance(t, st, "huge")
		c := api.FindCondition(inst.Status.Conditions, api.ConditionScheduled)
		return c != nil && !c.Status && c.Reason == api.ReasonInsufficientCapacity
	})
	inst, _ := getInstance(t, st, "huge")
	if inst.Status.Phase != api.PhasePending || inst.Status.Host != "" {
		t.Fatalf("huge: phase %s host %q, want Pending unplaced", inst.Status.Phase, inst.Status.Host)
	}
	c := api.FindCondition(inst.Status.Conditions, api.ConditionScheduled)
	if want := "3 hosts have too few free vCPUs"; !strings.Contains(c.Message, want) {
		t.Errorf("message %q lacks %q", c.Message, want)
	}

	// A bigger host appears: huge goes there.
	addHost(t, st, "big", 32, 65536)
	if h := hostOf(t, st, "huge"); h != "big" {
		t.Errorf("huge placed on %s, want big", h)
	}
	inst, _ = getInstance(t, st, "huge")
	if c := api.FindCondition(inst.Status.Conditions, api.ConditionScheduled); c == nil || !c.Status {
		t.Errorf("huge Scheduled condition = %+v, want true", c)
	}

	// The scheduler keeps host.status.allocated.
	wait.For(t, waitLimit, "allocation of big written", func() bool {
		return getHost(t, st, "big").Status.Allocated.VCPUs == 16
	})

	// Events were recorded for the placements.
	wait.For(t, waitLimit, "Scheduled events", func() bool {
		evs, _, err := st.List(context.Background(), api.EventKind, "demo", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range evs {
			if e := o.(*api.Event); e.Reason == "Scheduled" {
				n++
			}
		}
		return n >= 7
	})
}

func TestExpiredHostGetsNothingNew(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	stopA := addHost(t, st, "a", 8, 16384)
	addHost(t, st, "b", 8, 16384)
	runLeader(t, st, etcdtest.NewGuard(t, cli, "/test/leader"))
	for _, n := range []string{"a", "b"} {
		wait.For(t, waitLimit, "host "+n+" Ready", func() bool { return getHost(t, st, n).Status.Phase == api.HostReady })
	}

	stopA() // the agent on a dies; its lease runs out
	wait.For(t, waitLimit, "host a NotReady", func() bool { return getHost(t, st, "a").Status.Phase == api.HostNotReady })
	h := getHost(t, st, "a")
	c := api.FindCondition(h.Status.Conditions, api.ConditionReady)
	if c == nil || c.Status || c.Reason != hosthealth.ReasonHeartbeatExpired {
		t.Errorf("Ready condition of a = %+v", c)
	}
	if getHost(t, st, "b").Status.Phase != api.HostReady {
		t.Errorf("host b is not Ready")
	}
	for i := range 4 {
		addInstance(t, st, fmt.Sprintf("i-%d", i), 1, 512)
	}
	for i := range 4 {
		if h := hostOf(t, st, fmt.Sprintf("i-%d", i)); h != "b" {
			t.Errorf("i-%d placed on %s, want b (a is NotReady)", i, h)
		}
	}

	// The agent comes back.
	etcdtest.Heartbeat(t, st.Presence(), "a")
	wait.For(t, waitLimit, "host a Ready again", func() bool { return getHost(t, st, "a").Status.Phase == api.HostReady })
}

func TestDeletion(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	addHost(t, st, "a", 4, 8192)
	addInstance(t, st, "unplaced", 64, 1024) // never fits
	addInstance(t, st, "placed", 1, 1024)
	runLeader(t, st, etcdtest.NewGuard(t, cli, "/test/leader"))
	hostOf(t, st, "placed")
	wait.For(t, waitLimit, "unplaced marked", func() bool {
		inst, _ := getInstance(t, st, "unplaced")
		return inst.Status.Reason == api.ReasonInsufficientCapacity
	})

	markDeleted := func(name string, edit func(*api.Instance)) {
		t.Helper()
		for {
			inst, _ := getInstance(t, st, name)
			now := time.Now().UTC()
			inst.Metadata.DeletionTimestamp = &now
			if edit != nil {
				edit(inst)
			}
			err := st.Update(context.Background(), inst)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				t.Fatalf("mark %s deleted: %v", name, err)
			}
			return
		}
	}
	gone := func(name string) func() bool {
		return func() bool { _, ok := getInstance(t, st, name); return !ok }
	}

	markDeleted("unplaced", nil)
	wait.For(t, waitLimit, "unplaced instance removed", gone("unplaced"))

	// Placed: stays while the agent tears it down, goes once Terminated.
	markDeleted("placed", func(i *api.Instance) { i.Status.Phase = api.PhaseTerminating })
	inst, ok := getInstance(t, st, "placed")
	if !ok || inst.Status.Phase != api.PhaseTerminating {
		t.Fatalf("placed instance gone or not Terminating: %+v", inst)
	}
	markDeleted("placed", func(i *api.Instance) { i.Status.Phase = api.PhaseTerminated })
	wait.For(t, waitLimit, "terminated instance removed", gone("placed"))
}

func TestDeposedLeaderStopsWriting(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	addHost(t, st, "a", 8, 16384)
	counting := newCounting(st)
	g := etcdtest.NewGuard(t, cli, "/test/leader")
	guarded := counting.WithGuard(g).(*countingStore)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunLeader(ctx, guarded, Config{Logger: etcdtest.Quiet(), Resync: time.Second}) }()
	t.Cleanup(func() { cancel(); <-done })

	addInstance(t, st, "before", 1, 512)
	hostOf(t, st, "before")

	g.Revoke(t, cli) // another server took over
	addInstance(t, st, "after", 1, 512)
	wait.For(t, waitLimit, "guarded write refused", func() bool {
		return guarded.failedWith("after", store.ErrGuardFailed)
	})
	if inst, _ := getInstance(t, st, "after"); inst.Status.Host != "" {
		t.Errorf("deposed leader placed an instance on %s", inst.Status.Host)
	}
}

// runElected runs Run with identity over a counting view of st until the
// test ends or stop is called; stop waits for Run to return.
func runElected(t *testing.T, cli *clientv3.Client, st *countingStore, identity string) (stop func()) {
	t.Helper()
	return wait.Go(t, waitLimit, "Run "+identity, func(ctx context.Context) error {
		return Run(ctx, Config{Client: cli, Store: st, Identity: identity, Logger: etcdtest.Quiet(),
			LeaseTTL: time.Second, Resync: time.Second})
	})
}

func TestTwoRunnersOneActs(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	addHost(t, st, "a", 16, 32768)
	addHost(t, st, "b", 16, 32768)
	runners := map[string]*countingStore{"s1": newCounting(st), "s2": newCounting(st)}
	stops := map[string]func(){}
	for id, cs := range runners {
		stops[id] = runElected(t, cli, cs, id)
	}
	for i := range 4 {
		addInstance(t, st, fmt.Sprintf("first-%d", i), 1, 512)
	}
	for i := range 4 {
		hostOf(t, st, fmt.Sprintf("first-%d", i))
	}

	leader, err := election.Leader(context.Background(), cli, DefaultElectionName)
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	other := "s1"
	if leader == "s1" {
		other = "s2"
	}
	if runners[leader].writes() == 0 {
		t.Errorf("leader %s wrote nothing", leader)
	}
	if n := runners[other].writes(); n != 0 {
		t.Errorf("follower %s made %d writes", other, n)
	}

	// Depose the leader by cancelling its election; the other takes over.
	stops[leader]()
	deposed := runners[leader].writes()
	for i := range 4 {
		addInstance(t, st, fmt.Sprintf("second-%d", i), 1, 512)
	}
	for i := range 4 {
		hostOf(t, st, fmt.Sprintf("second-%d", i))
	}
	if n := runners[leader].writes(); n != deposed {
		t.Errorf("deposed leader %s wrote %d times after it stopped", leader, n-deposed)
	}
	if runners[other].writes() == 0 {
		t.Errorf("new leader %s wrote nothing", other)
	}
}

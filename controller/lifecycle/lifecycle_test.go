package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func deleted(host string, phase api.InstancePhase, at time.Time) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: "i", Project: "p", DeletionTimestamp: &at},
		Status:   api.InstanceStatus{Host: host, Phase: phase},
	}
}

func hostIn(phase api.HostPhase, since time.Time) *api.Host {
	h := &api.Host{Metadata: api.ObjectMeta{Name: "h"}, Status: api.HostStatus{Phase: phase}}
	h.Status.Conditions = []api.Condition{{Type: api.ConditionReady, Status: phase == api.HostReady, LastTransitionTime: since}}
	return h
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		inst    *api.Instance
		host    *api.Host
		want    Action
		wantMsg string
	}{
		{"not deleted", &api.Instance{Status: api.InstanceStatus{Host: "h", Phase: api.PhaseRunning}}, hostIn(api.HostReady, t0), Nothing, ""},
		{"never placed", deleted("", api.PhasePending, t0), nil, Delete, ""},
		{"terminated", deleted("h", api.PhaseTerminated, t0), hostIn(api.HostReady, t0), Delete, ""},
		{"terminated on a dead host", deleted("h", api.PhaseTerminated, t0), hostIn(api.HostNotReady, t0), Delete, ""},
		{"agent tearing down", deleted("h", api.PhaseTerminating, t0), hostIn(api.HostReady, t0), Nothing, ""},
		{"host NotReady", deleted("h", api.PhaseTerminating, t0), hostIn(api.HostNotReady, t0), Finalize, "host h is NotReady"},
		{"host gone", deleted("h", api.PhaseRunning, t0), nil, Finalize, "no longer exists"},
		{"terminated, finalizer left", finalized(deleted("h", api.PhaseTerminated, t0)), hostIn(api.HostReady, t0), Nothing, ""},
		{"host NotReady, finalizer left", finalized(deleted("h", api.PhaseTerminating, t0)), hostIn(api.HostNotReady, t0), Nothing, ""},
		{"never placed, finalizer left", finalized(deleted("", api.PhasePending, t0)), nil, Nothing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, msg := Decide(tt.inst, tt.host)
			if act != tt.want {
				t.Fatalf("Decide = %v, %q; want %v", act, msg, tt.want)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", msg, tt.wantMsg)
			}
		})
	}
}

// finalized adds the load balancer finalizer to inst.
func finalized(inst *api.Instance) *api.Instance {
	inst.Metadata.Finalizers = []string{api.FinalizerLoadBalancer}
	return inst
}

func TestLost(t *testing.T) {
	on := func(phase api.InstancePhase) *api.Instance {
		return &api.Instance{Status: api.InstanceStatus{Host: "h", Phase: phase}}
	}
	tests := []struct {
		name       string
		inst       *api.Instance
		host       *api.Host
		want       bool
		wantPeriod string
	}{
		{"running on a Ready host", on(api.PhaseRunning), hostIn(api.HostReady, t0), false, ""},
		{"running on a NotReady host", on(api.PhaseRunning), hostIn(api.HostNotReady, t0), true, t0.Format(time.RFC3339Nano)},
		{"stopped on a NotReady host", on(api.PhaseStopped), hostIn(api.HostNotReady, t0), true, t0.Format(time.RFC3339Nano)},
		{"host gone", on(api.PhaseStarting), nil, true, ""},
		{"terminated", on(api.PhaseTerminated), hostIn(api.HostNotReady, t0), false, ""},
		{"not placed", &api.Instance{Status: api.InstanceStatus{Phase: api.PhasePending}}, nil, false, ""},
		{"deleted: Decide's business", deleted("h", api.PhaseRunning, t0), hostIn(api.HostNotReady, t0), false, ""},
	}
	for _, tt := range tests {
		lost, period, msg := Lost(tt.inst, tt.host)
		if lost != tt.want || period != tt.wantPeriod || (lost && !strings.Contains(msg, "host h")) {
			t.Errorf("%s: Lost = %v, %q, %q; want %v, %q", tt.name, lost, period, msg, tt.want, tt.wantPeriod)
		}
	}
}

// sink collects events.
type sink struct {
	mu  sync.Mutex
	evs []string // "name reason"
}

func (s *sink) Event(ctx context.Context, obj api.Object, typ, reason, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, obj.Meta().Name+" "+reason)
}

func (s *sink) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.evs...)
}

// start runs informers and a lifecycle controller until stop, and waits
// for the instance cache.
func start(t *testing.T, st store.Interface, rec *sink) (stop func()) {
	t.Helper()
	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	instances := cache.New(st, api.InstanceKind, 0, log)
	c := New(Options{Store: st, Hosts: hosts, Instances: instances, Recorder: rec, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range []func(context.Context) error{hosts.Run, instances.Run, c.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := instances.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return stop
}

// setPhase writes an instance's phase as the agent would (reading again
// after a conflict with the controller).
func setPhase(t *testing.T, st store.Interface, name string, phase api.InstancePhase, edit func(*api.Instance)) {
	t.Helper()
	for {
		var inst api.Instance
		if err := st.Get(context.Background(), api.InstanceKind, "p", name, &inst); err != nil {
			t.Fatal(err)
		}
		inst.Status.Phase = phase
		if edit != nil {
			edit(&inst)
		}
		err := st.Update(context.Background(), &inst)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

func TestPhaseEventsOncePerTransition(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHost(t, st, "h", api.HostReady, t0)
	inst := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web", Project: "p"},
		Status: api.InstanceStatus{Phase: api.PhasePending}}
	if _, err := st.Create(context.Background(), inst, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setPhase(t, st, "web", api.PhaseScheduled, func(i *api.Instance) { i.Status.Host = "h" })
	setPhase(t, st, "web", api.PhaseStarting, nil)

	rec := &sink{}
	stop := start(t, st, rec)
	setPhase(t, st, "web", api.PhaseRunning, nil)
	wait.For(t, 10*time.Second, "Running event", func() bool { return len(rec.list()) == 1 })
	stop()
	// Restart: the current phase is not replayed, the next one is recorded.
	start(t, st, rec)
	setPhase(t, st, "web", api.PhaseStopped, nil)
	wait.For(t, 10*time.Second, "Stopped event", func() bool { return len(rec.list()) == 2 })
	setPhase(t, st, "web", api.PhaseFailed, func(i *api.Instance) { i.Status.Reason = api.ReasonCrashLoop })
	wait.For(t, 10*time.Second, "Failed event", func() bool { return len(rec.list()) == 3 })
	want := []string{"web Running", "web Stopped", "web Failed"}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

// createHost stores a host in phase; a Ready host also gets a presence
// key, as its heartbeats would make.
func createHost(t *testing.T, st store.Interface, name string, phase api.HostPhase, since time.Time) {
	t.Helper()
	h := &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: name}, Status: api.HostStatus{
		Phase:      phase,
		Conditions: []api.Condition{{Type: api.ConditionReady, Status: phase == api.HostReady, Reason: "HeartbeatExpired", LastTransitionTime: since}},
	}}
	if _, err := st.Create(context.Background(), h, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if phase == api.HostReady {
		if err := st.Presence().Renew(context.Background(), name, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// countingStore counts reads of the presence keys.
type countingStore struct {
	store.Interface
	reads atomic.Int32
}

func (s *countingStore) Presence() store.Presence {
	return countingPresence{s.Interface.Presence(), &s.reads}
}

type countingPresence struct {
	store.Presence
	reads *atomic.Int32
}

func (p countingPresence) Alive(ctx context.Context) (map[string]bool, int64, error) {
	p.reads.Add(1)
	return p.Presence.Alive(ctx)
}

func createInstance(t *testing.T, st store.Interface, name, host string, phase api.InstancePhase, claims ...string) {
	t.Helper()
	inst := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: name, Project: "p"},
		Status: api.InstanceStatus{Phase: phase, Host: host}}
	if _, err := st.Create(context.Background(), inst, store.CreateOptions{Claims: claims}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, st store.Interface, name string) (*api.Instance, bool) {
	t.Helper()
	var got api.Instance
	err := st.Get(context.Background(), api.InstanceKind, "p", name, &got)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return &got, true
}

// TestLostHostInstances: a deleted instance of a NotReady host is
// finalized (object and address claim gone) while one on a Ready host
// waits for its agent; the live instances of the lost host are marked
// HostLost once, keeping their phase.
func TestLostHostInstances(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	dead := time.Now().Add(-time.Minute).UTC()
	createHost(t, st, "dead", api.HostNotReady, dead)
	createHost(t, st, "live", api.HostReady, dead)
	createInstance(t, st, "gone", "dead", api.PhaseRunning, "ip/net1/10.0.0.5")
	createInstance(t, st, "web", "dead", api.PhaseRunning)
	createInstance(t, st, "off", "dead", api.PhaseStopped, "ip/net1/10.0.0.7")
	createInstance(t, st, "other", "live", api.PhaseRunning)
	createInstance(t, st, "leaving", "live", api.PhaseRunning)
	rec := &sink{}
	start(t, st, rec)

	now := time.Now().UTC()
	for _, name := range []string{"gone", "leaving"} {
		setPhase(t, st, name, api.PhaseTerminating, func(i *api.Instance) { i.Metadata.DeletionTimestamp = &now })
	}
	wait.For(t, 10*time.Second, "instance of the dead host finalized", func() bool { _, ok := get(t, st, "gone"); return !ok })
	claims, err := st.ListClaims(context.Background(), "ip/net1/")
	if err != nil || len(claims) != 1 {
		t.Errorf("claims after finalizing = %v, %v; want only 10.0.0.7's", claims, err)
	}
	wait.For(t, 10*time.Second, "Finalized event", func() bool { return slices.Contains(rec.list(), "gone Finalized") })

	web := func() *api.Instance { i, _ := get(t, st, "web"); return i }
	wait.For(t, 10*time.Second, "web marked HostLost", func() bool { return web().Status.Reason == api.ReasonHostLost })
	w := web()
	if w.Status.Phase != api.PhaseRunning || !strings.Contains(w.Status.Message, "host dead is NotReady") {
		t.Errorf("lost instance status = %+v", w.Status)
	}
	for _, typ := range []string{api.ConditionReady, api.ConditionHealthy} {
		if c := api.FindCondition(w.Status.Conditions, typ); c == nil || c.Status || c.Reason != api.ReasonHostLost {
			t.Errorf("condition %s = %+v, want false/HostLost", typ, c)
		}
	}
	var off *api.Instance
	wait.For(t, 10*time.Second, "off marked", func() bool {
		off, _ = get(t, st, "off")
		c := api.FindCondition(off.Status.Conditions, api.ConditionReady)
		return c != nil && c.Reason == api.ReasonHostLost
	})
	if off.Status.Reason != "" || off.Status.Phase != api.PhaseStopped {
		t.Errorf("a stopped instance lost its reason or phase: %+v", off.Status)
	}

	// The agent writes it back while the host is still NotReady: the
	// controller does not fight it within the same NotReady period.
	setPhase(t, st, "web", api.PhaseRunning, func(i *api.Instance) {
		i.Status.Reason, i.Status.Message = "", ""
		i.Status.Conditions = nil
	})
	setPhase(t, st, "other", api.PhaseRunning, nil) // an event to wait past
	wait.For(t, 10*time.Second, "instance on the live host untouched, deletion waiting", func() bool {
		o, _ := get(t, st, "other")
		l, ok := get(t, st, "leaving")
		return o.Status.Reason == "" && ok && l.Status.Phase == api.PhaseTerminating
	})
	if w := web(); w.Status.Reason != "" {
		t.Errorf("marked again within one NotReady period: %+v", w.Status)
	}
	if n := strings.Count(strings.Join(rec.list(), ","), "web HostLost"); n != 1 {
		t.Errorf("HostLost events for web = %d, want 1 (%v)", n, rec.list())
	}

	// The agent of the live host finishes: that instance goes too.
	setPhase(t, st, "leaving", api.PhaseTerminated, nil)
	wait.For(t, 10*time.Second, "terminated instance removed", func() bool { _, ok := get(t, st, "leaving"); return !ok })
}

// TestFinalizeWaitsForLease: a host marked NotReady whose presence key is
// alive again (the phase lags) keeps its deleted instances for its agent.
func TestFinalizeWaitsForLease(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHost(t, st, "h", api.HostNotReady, time.Now().Add(-time.Minute))
	if err := st.Presence().Renew(context.Background(), "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	createInstance(t, st, "web", "h", api.PhaseRunning)
	cs := &countingStore{Interface: st}
	start(t, cs, &sink{})
	now := time.Now().UTC()
	setPhase(t, st, "web", api.PhaseTerminating, func(i *api.Instance) { i.Metadata.DeletionTimestamp = &now })
	wait.For(t, 10*time.Second, "three reads of the presence keys", func() bool { return cs.reads.Load() >= 3 })
	if _, ok := get(t, st, "web"); !ok {
		t.Fatal("instance of a host with a live lease was finalized")
	}
	if err := st.Presence().Remove(context.Background(), "h"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "finalized once the lease is gone", func() bool { _, ok := get(t, st, "web"); return !ok })
}

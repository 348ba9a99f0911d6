package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/controller/internal/etcdtest"
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
	const grace = 5 * time.Minute
	tests := []struct {
		name        string
		inst        *api.Instance
		host        *api.Host
		now         time.Time
		want        Action
		wantMsg     string
		wantRecheck time.Duration
	}{
		{"not deleted", &api.Instance{Status: api.InstanceStatus{Host: "h", Phase: api.PhaseRunning}}, hostIn(api.HostReady, t0), t0, Nothing, "", 0},
		{"never placed", deleted("", api.PhasePending, t0), nil, t0, Delete, "", 0},
		{"terminated", deleted("h", api.PhaseTerminated, t0), hostIn(api.HostReady, t0), t0, Delete, "", 0},
		{"terminated on a dead host", deleted("h", api.PhaseTerminated, t0), hostIn(api.HostNotReady, t0), t0, Delete, "", 0},
		{"agent tearing down", deleted("h", api.PhaseTerminating, t0), hostIn(api.HostReady, t0), t0.Add(time.Hour), Nothing, "", 0},
		{"host NotReady within grace", deleted("h", api.PhaseTerminating, t0), hostIn(api.HostNotReady, t0), t0.Add(time.Minute), Nothing, "", 4 * time.Minute},
		{"host NotReady past grace", deleted("h", api.PhaseTerminating, t0), hostIn(api.HostNotReady, t0), t0.Add(grace), WaitForHost, "NotReady since 2026-01-02T03:04:05Z", 0},
		{"host gone", deleted("h", api.PhaseRunning, t0), nil, t0, WaitForHost, "no longer exists", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, msg, recheck := Decide(tt.inst, tt.host, grace, tt.now)
			if act != tt.want || recheck != tt.wantRecheck {
				t.Fatalf("Decide = %v, %q, %v; want %v, recheck %v", act, msg, recheck, tt.want, tt.wantRecheck)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", msg, tt.wantMsg)
			}
		})
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
func start(t *testing.T, st store.Interface, rec *sink, grace time.Duration) (stop func()) {
	t.Helper()
	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	instances := cache.New(st, api.InstanceKind, 0, log)
	c := New(Options{Store: st, Hosts: hosts, Instances: instances, Recorder: rec, Logger: log, HostGrace: grace})
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

// setPhase writes an instance's phase as the agent would.
func setPhase(t *testing.T, st store.Interface, name string, phase api.InstancePhase, edit func(*api.Instance)) {
	t.Helper()
	var inst api.Instance
	if err := st.Get(context.Background(), api.InstanceKind, "p", name, &inst); err != nil {
		t.Fatal(err)
	}
	inst.Status.Phase = phase
	if edit != nil {
		edit(&inst)
	}
	if err := st.Update(context.Background(), &inst); err != nil {
		t.Fatal(err)
	}
}

func TestPhaseEventsOncePerTransition(t *testing.T) {
	_, st := etcdtest.Start(t)
	inst := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web", Project: "p"},
		Status: api.InstanceStatus{Phase: api.PhasePending}}
	if _, err := st.Create(context.Background(), inst, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setPhase(t, st, "web", api.PhaseScheduled, func(i *api.Instance) { i.Status.Host = "h" })
	setPhase(t, st, "web", api.PhaseStarting, nil)

	rec := &sink{}
	stop := start(t, st, rec, time.Minute)
	setPhase(t, st, "web", api.PhaseRunning, nil)
	etcdtest.Eventually(t, 10*time.Second, "Running event", func() bool { return len(rec.list()) == 1 })
	stop()
	// Restart: the current phase is not replayed, the next one is recorded.
	start(t, st, rec, time.Minute)
	setPhase(t, st, "web", api.PhaseStopped, nil)
	etcdtest.Eventually(t, 10*time.Second, "Stopped event", func() bool { return len(rec.list()) == 2 })
	setPhase(t, st, "web", api.PhaseFailed, func(i *api.Instance) { i.Status.Reason = api.ReasonCrashLoop })
	etcdtest.Eventually(t, 10*time.Second, "Failed event", func() bool { return len(rec.list()) == 3 })
	want := []string{"web Running", "web Stopped", "web Failed"}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestWaitsForDeadHost(t *testing.T) {
	_, st := etcdtest.Start(t)
	dead := time.Now().Add(-time.Hour).UTC()
	h := &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: "h"}, Status: api.HostStatus{
		Phase:      api.HostNotReady,
		Conditions: []api.Condition{{Type: api.ConditionReady, Status: false, Reason: "HeartbeatExpired", LastTransitionTime: dead}},
	}}
	if _, err := st.Create(context.Background(), h, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	inst := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web", Project: "p"},
		Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h"}}
	if _, err := st.Create(context.Background(), inst, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, st, &sink{}, time.Minute)
	setPhase(t, st, "web", api.PhaseTerminating, func(i *api.Instance) { i.Metadata.DeletionTimestamp = &now })
	var got api.Instance
	etcdtest.Eventually(t, 10*time.Second, "waiting message", func() bool {
		if err := st.Get(context.Background(), api.InstanceKind, "p", "web", &got); err != nil {
			t.Fatalf("instance on a dead host was deleted: %v", err)
		}
		return strings.Contains(got.Status.Message, "waiting for host h")
	})
	if got.Status.Phase != api.PhaseTerminating {
		t.Errorf("phase = %s, want Terminating", got.Status.Phase)
	}
	// The agent comes back and finishes: the instance goes.
	setPhase(t, st, "web", api.PhaseTerminated, nil)
	etcdtest.Eventually(t, 10*time.Second, "instance removed", func() bool {
		err := st.Get(context.Background(), api.InstanceKind, "p", "web", &got)
		return err != nil
	})
}

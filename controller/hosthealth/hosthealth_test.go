package hosthealth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDesired(t *testing.T) {
	ready, _ := Desired(&api.Host{}, true, t0)
	notReady, _ := Desired(&api.Host{}, false, t0)
	tests := []struct {
		name       string
		status     api.HostStatus
		alive      bool
		wantPhase  api.HostPhase
		wantReason string
		wantChange bool
	}{
		{"new host alive", api.HostStatus{}, true, api.HostReady, ReasonHeartbeating, true},
		{"new host silent", api.HostStatus{}, false, api.HostNotReady, ReasonHeartbeatExpired, true},
		{"ready stays ready", ready, true, api.HostReady, ReasonHeartbeating, false},
		{"ready expires", ready, false, api.HostNotReady, ReasonHeartbeatExpired, true},
		{"notready comes back", notReady, true, api.HostReady, ReasonHeartbeating, true},
		{"notready stays", notReady, false, api.HostNotReady, ReasonHeartbeatExpired, false},
		{"phase right, condition missing", api.HostStatus{Phase: api.HostReady}, true, api.HostReady, ReasonHeartbeating, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &api.Host{Status: tt.status}
			st, changed := Desired(h, tt.alive, t0.Add(time.Minute))
			if changed != tt.wantChange || st.Phase != tt.wantPhase {
				t.Fatalf("Desired = %s changed %v, want %s changed %v", st.Phase, changed, tt.wantPhase, tt.wantChange)
			}
			c := api.FindCondition(st.Conditions, api.ConditionReady)
			if c == nil || c.Reason != tt.wantReason || c.Status != (tt.wantPhase == api.HostReady) {
				t.Errorf("Ready condition = %+v", c)
			}
			if changed && len(tt.status.Conditions) > 0 && &tt.status.Conditions[0] == &st.Conditions[0] {
				t.Errorf("Desired shares the input's conditions")
			}
		})
	}
}

// sink collects event reasons.
type sink struct {
	mu  sync.Mutex
	evs []string
}

func (s *sink) Event(ctx context.Context, obj api.Object, typ, reason, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, obj.Meta().Name+" "+reason)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.evs)
}

// countingStore counts successful host updates.
type countingStore struct {
	store.Interface
	mu      sync.Mutex
	updates int
}

func (c *countingStore) Update(ctx context.Context, obj api.Object) error {
	err := c.Interface.Update(ctx, obj)
	if err == nil {
		c.mu.Lock()
		c.updates++
		c.mu.Unlock()
	}
	return err
}

func (c *countingStore) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.updates
}

func start(t *testing.T, st store.Interface, rec *sink) (c *Controller, stop func()) {
	t.Helper()
	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	c = New(Options{Store: st, Hosts: hosts, Recorder: rec, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range []func(context.Context) error{hosts.Run, c.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return c, stop
}

func phaseOf(t *testing.T, st store.Interface, name string) api.HostPhase {
	t.Helper()
	var h api.Host
	if err := st.Get(context.Background(), api.HostKind, "", name, &h); err != nil {
		t.Fatal(err)
	}
	return h.Status.Phase
}

func TestPresenceDrivesPhaseWithoutFlapping(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if _, err := st.Create(ctx, &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: n}}, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Presence().Renew(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := &sink{}
	_, stop := start(t, st, rec)
	wait.For(t, 10*time.Second, "a Ready, b NotReady", func() bool {
		return phaseOf(t, st, "a") == api.HostReady && phaseOf(t, st, "b") == api.HostNotReady
	})
	wait.For(t, 10*time.Second, "two events", func() bool { return rec.count() == 2 })

	// b's agent starts heartbeating: Ready.
	if err := st.Presence().Renew(ctx, "b", time.Minute); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "b Ready", func() bool { return phaseOf(t, st, "b") == api.HostReady })
	stop()

	// A new leader starts: nothing to change, so nothing is written.
	counting := &countingStore{Interface: st}
	c, _ := start(t, counting, rec)
	wait.For(t, 10*time.Second, "new leader reconciled both hosts", func() bool {
		return c.queue.Stats().Processed >= 2 && c.queue.Len() == 0
	})
	if n := counting.n(); n != 0 {
		t.Errorf("new leader made %d host updates, want none", n)
	}

	// a's key goes away: NotReady.
	if err := st.Presence().Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "a NotReady", func() bool { return phaseOf(t, st, "a") == api.HostNotReady })
	// The write is visible in etcd a moment before Update returns to the
	// counting store: wait for the new leader to count it.
	wait.For(t, 10*time.Second, "new leader wrote a NotReady", func() bool { return counting.n() >= 1 })
	if phaseOf(t, st, "b") != api.HostReady {
		t.Errorf("b flapped")
	}
	if n := counting.n(); n != 1 {
		t.Errorf("new leader made %d host updates, want 1 (a NotReady)", n)
	}
}

package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

// gatedStore holds every UpdateBatch until its gate opens, runs before
// (once) on the first batch holding an object named victim, and counts
// what each batch wrote.
type gatedStore struct {
	store.Interface
	gate   chan struct{}
	victim string
	before func()

	mu       sync.Mutex
	ok       map[string]int
	failed   map[string][]error
	maxBatch int
}

func newGated(st store.Interface, victim string, before func()) *gatedStore {
	return &gatedStore{Interface: st, gate: make(chan struct{}), victim: victim, before: before,
		ok: map[string]int{}, failed: map[string][]error{}}
}

func (g *gatedStore) UpdateBatch(ctx context.Context, objs []api.Object) []error {
	<-g.gate
	g.mu.Lock()
	for _, o := range objs {
		if o.Meta().Name == g.victim && g.before != nil {
			g.before()
			g.before = nil
		}
	}
	g.maxBatch = max(g.maxBatch, len(objs))
	g.mu.Unlock()
	errs := g.Interface.UpdateBatch(ctx, objs)
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, err := range errs {
		name := objs[i].Meta().Name
		if err == nil {
			g.ok[name]++
		} else {
			g.failed[name] = append(g.failed[name], err)
		}
	}
	return errs
}

// decided returns how many placements s decided and has not seen stored.
func decided(s *Scheduler) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.assumed)
}

// TestBatchConflictRetriesOnlyThatOne: the placements decided while the
// writers are busy go out together; one of them changed meanwhile, and
// only that one fails and is placed again.
func TestBatchConflictRetriesOnlyThatOne(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHosts(t, st, 4)
	const n = 40
	createInstances(t, st, "b", n)
	g := newGated(st, "b-7", func() {
		var in api.Instance
		if err := st.Get(context.Background(), api.InstanceKind, "bench", "b-7", &in); err != nil {
			t.Error(err)
			return
		}
		in.Metadata.Labels = map[string]string{"touched": "yes"}
		if err := st.Update(context.Background(), &in); err != nil {
			t.Error(err)
		}
	})
	s, instances, _ := run(t, g)
	wait.For(t, 30*time.Second, "every placement decided", func() bool { return decided(s) == n })
	close(g.gate)
	wait.For(t, 30*time.Second, "every instance placed", func() bool { return placed(instances) == n })

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxBatch < 2 {
		t.Errorf("largest batch %d, want placements written together", g.maxBatch)
	}
	for name, errs := range g.failed {
		if name != "b-7" || len(errs) != 1 || !errors.Is(errs[0], store.ErrConflict) {
			t.Errorf("%s: failed writes %v, want one conflict of b-7 only", name, errs)
		}
	}
	if len(g.failed["b-7"]) != 1 {
		t.Error("the changed instance was written without a conflict")
	}
	for i := range n {
		name := fmt.Sprintf("b-%d", i)
		if g.ok[name] != 1 {
			t.Errorf("%s written %d times, want once", name, g.ok[name])
		}
	}
	var in api.Instance
	if err := st.Get(context.Background(), api.InstanceKind, "bench", "b-7", &in); err != nil {
		t.Fatal(err)
	}
	if in.Metadata.Labels["touched"] != "yes" || in.Status.Host == "" {
		t.Errorf("b-7: labels %v host %q, want the other writer's label kept and a host", in.Metadata.Labels, in.Status.Host)
	}
}

// TestBatchGuardFencesDeposedLeader: placements decided by a leader whose
// term ended are refused as a whole, and not retried.
func TestBatchGuardFencesDeposedLeader(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.NewEtcd(cli)
	ctx := context.Background()
	put, err := cli.Put(ctx, "/test/leader", "me")
	if err != nil {
		t.Fatal(err)
	}
	createHosts(t, st, 4)
	const n = 20
	createInstances(t, st, "f", n)
	g := newGated(st.WithGuard(testGuard{"/test/leader", put.Header.Revision}), "", nil)
	s, _, stop := run(t, g)
	wait.For(t, 30*time.Second, "every placement decided", func() bool { return decided(s) == n })
	// Another server's term begins.
	if _, err := cli.Delete(ctx, "/test/leader"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/test/leader", "other"); err != nil {
		t.Fatal(err)
	}
	close(g.gate)
	wait.For(t, 30*time.Second, "every write refused", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.failed) == n
	})
	stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, errs := range g.failed {
		if len(errs) != 1 || !errors.Is(errs[0], store.ErrGuardFailed) {
			t.Errorf("%s: %v, want one ErrGuardFailed (no retry)", name, errs)
		}
	}
	if len(g.ok) != 0 {
		t.Errorf("a deposed leader wrote %v", g.ok)
	}
	items, _, err := st.List(ctx, api.InstanceKind, "bench", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range items {
		if h := o.(*api.Instance).Status.Host; h != "" {
			t.Errorf("%s stored on %s by a deposed leader", o.Meta().Name, h)
		}
	}
}

// testGuard is a store.Guard on a key the test writes.
type testGuard struct {
	key string
	rev int64
}

func (g testGuard) Key() string     { return g.key }
func (g testGuard) Revision() int64 { return g.rev }

package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

const waitLimit = 10 * time.Second

// seen collects the keys handlers were told about.
type seen struct {
	mu   sync.Mutex
	keys map[string]int
}

func (s *seen) handle(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key]++
}

func (s *seen) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

func createHost(t *testing.T, st store.Interface, name string) {
	t.Helper()
	if _, err := st.Create(context.Background(), &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: name}}, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, st store.Interface, kind *api.Kind, resync time.Duration) (*Informer, *seen) {
	t.Helper()
	in := New(st, kind, resync, etcdtest.Quiet())
	s := &seen{keys: map[string]int{}}
	in.AddHandler(s.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = in.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, waitLimit)
	defer wcancel()
	if err := in.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return in, s
}

func TestKeys(t *testing.T) {
	tests := []struct {
		obj             api.Object
		key, proj, name string
	}{
		{&api.Host{Metadata: api.ObjectMeta{Name: "h1"}}, "h1", "", "h1"},
		{&api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "shop"}}, "shop/web", "shop", "web"},
	}
	for _, tt := range tests {
		if k := Key(tt.obj); k != tt.key {
			t.Errorf("Key = %q, want %q", k, tt.key)
		}
		if p, n := SplitKey(tt.key); p != tt.proj || n != tt.name {
			t.Errorf("SplitKey(%q) = %q, %q", tt.key, p, n)
		}
	}
}

func TestCopyIsDeep(t *testing.T) {
	orig := &api.Instance{Metadata: api.ObjectMeta{Name: "a", Labels: map[string]string{"k": "v"}},
		Spec: api.InstanceSpec{Tolerations: []string{"x"}}}
	c, err := Copy(orig)
	if err != nil {
		t.Fatal(err)
	}
	c.Metadata.Labels["k"] = "changed"
	c.Spec.Tolerations[0] = "changed"
	if orig.Metadata.Labels["k"] != "v" || orig.Spec.Tolerations[0] != "x" {
		t.Errorf("Copy shares memory with the original: %+v", orig)
	}
}

func TestListWatchAndNotify(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHost(t, st, "a")
	createHost(t, st, "b")
	in, s := run(t, st, api.HostKind, time.Hour)
	if _, ok := in.Get("a"); !ok || len(in.List()) != 2 {
		t.Fatalf("cache after list: %d objects", len(in.List()))
	}
	if s.count("a") != 1 || s.count("b") != 1 {
		t.Errorf("initial notifications: %v", s.keys)
	}

	var h api.Host
	if err := st.Get(context.Background(), api.HostKind, "", "a", &h); err != nil {
		t.Fatal(err)
	}
	h.Spec.Unschedulable = true
	if err := st.Update(context.Background(), &h); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(context.Background(), api.HostKind, "", "b", ""); err != nil {
		t.Fatal(err)
	}
	createHost(t, st, "c")
	wait.For(t, waitLimit, "cache follows the watch", func() bool {
		a, ok := in.Get("a")
		_, hasB := in.Get("b")
		_, hasC := in.Get("c")
		return ok && a.(*api.Host).Spec.Unschedulable && !hasB && hasC
	})
	if s.count("a") != 2 || s.count("b") != 2 || s.count("c") != 1 {
		t.Errorf("notifications: %v", s.keys)
	}
	if in.Revision() < 4 {
		t.Errorf("Revision = %d after four writes", in.Revision())
	}
}

func TestResync(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHost(t, st, "a")
	_, s := run(t, st, api.HostKind, 20*time.Millisecond)
	wait.For(t, waitLimit, "resync notifies again", func() bool { return s.count("a") >= 3 })
}

// brokenWatch makes the first Watch fail after a write the informer has
// not seen: with ErrCompacted (the informer must list again) or by
// closing (it must resume from its revision).
type brokenWatch struct {
	store.Interface
	t         *testing.T
	compacted bool
	calls     atomic.Int64
}

func (b *brokenWatch) Watch(ctx context.Context, kind *api.Kind, project string, fromRev int64) (<-chan store.Event, error) {
	if b.calls.Add(1) > 1 {
		return b.Interface.Watch(ctx, kind, project, fromRev)
	}
	createHost(b.t, b.Interface, "missed")
	ch := make(chan store.Event, 1)
	if b.compacted {
		ch <- store.Event{Err: fmt.Errorf("watch: %w", store.ErrCompacted)}
	}
	close(ch)
	return ch, nil
}

func TestRecoversFromBrokenWatch(t *testing.T) {
	for _, compacted := range []bool{true, false} {
		t.Run(fmt.Sprintf("compacted=%v", compacted), func(t *testing.T) {
			st := store.NewEtcd(etcdtest.Client(t))
			createHost(t, st, "a")
			bw := &brokenWatch{Interface: st, t: t, compacted: compacted}
			in, s := run(t, bw, api.HostKind, time.Hour)
			wait.For(t, waitLimit, "missed host in cache", func() bool {
				_, ok := in.Get("missed")
				return ok
			})
			if s.count("missed") != 1 {
				t.Errorf("missed notified %d times, want 1", s.count("missed"))
			}
			createHost(t, st, "later")
			wait.For(t, waitLimit, "watch works again", func() bool {
				_, ok := in.Get("later")
				return ok
			})
		})
	}
}

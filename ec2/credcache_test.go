package ec2

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// countingStore counts Gets.
type countingStore struct {
	store.Interface
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, k *api.Kind, project, name string, out api.Object) error {
	s.gets.Add(1)
	return s.Interface.Get(ctx, k, project, name, out)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCredentialsCache(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := &countingStore{Interface: store.NewEtcd(etcdtest.Client(t))}
	mk := func(t *testing.T, o api.Object) {
		t.Helper()
		if _, err := st.Create(ctx, o, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	u := &api.User{Metadata: api.ObjectMeta{Name: "alice"}, Spec: api.UserSpec{Roles: map[string]api.Role{"p": api.RoleMember}}}
	mk(t, u)
	k := &api.AccessKey{Metadata: api.ObjectMeta{Name: "k1"}, Spec: api.AccessKeySpec{AccessKeyID: "AKIA1", User: "alice", Project: "p"}}
	mk(t, k)
	cr := newCredentials(st, ctx)
	getKey := func() (*api.AccessKey, error) {
		var out api.AccessKey
		return &out, cr.get(ctx, api.AccessKeyKind, "k1", &out)
	}
	getUser := func() (*api.User, error) {
		var out api.User
		return &out, cr.get(ctx, api.UserKind, "alice", &out)
	}
	if _, err := getKey(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "synced", func() bool {
		_, ok := cr.cached(cr.keys, api.AccessKeyKind, "k1")
		_, uok := cr.cached(cr.users, api.UserKind, "alice")
		return ok && uok
	})

	t.Run("answers from memory", func(t *testing.T) {
		before := st.gets.Load()
		for range 10 {
			if _, err := getKey(); err != nil {
				t.Fatal(err)
			}
			if _, err := getUser(); err != nil {
				t.Fatal(err)
			}
		}
		if n := st.gets.Load() - before; n != 0 {
			t.Errorf("%d store reads, want 0", n)
		}
	})
	t.Run("a key made elsewhere a moment ago is read from the store", func(t *testing.T) {
		k2 := &api.AccessKey{Metadata: api.ObjectMeta{Name: "k2"}, Spec: api.AccessKeySpec{AccessKeyID: "AKIA2", User: "alice", Project: "p"}}
		mk(t, k2)
		var out api.AccessKey
		if err := cr.get(ctx, api.AccessKeyKind, "k2", &out); err != nil || out.Spec.AccessKeyID != "AKIA2" {
			t.Fatalf("k2 = %+v, %v", out.Spec, err)
		}
	})
	t.Run("a role removed here counts at once", func(t *testing.T) {
		cur, err := getUser()
		if err != nil {
			t.Fatal(err)
		}
		next := *cur
		next.Spec.Roles = map[string]api.Role{}
		if err := st.Update(ctx, &next); err != nil {
			t.Fatal(err)
		}
		cr.changed(&next, false)
		got, err := getUser()
		if err != nil || len(got.Spec.Roles) != 0 {
			t.Fatalf("user after the change = %+v, %v", got.Spec, err)
		}
		// Once the watch shows it, the cache answers again.
		waitFor(t, "cache shows the change", func() bool {
			o, ok := cr.cached(cr.users, api.UserKind, "alice")
			return ok && len(o.(*api.User).Spec.Roles) == 0
		})
	})
	t.Run("a key deleted here fails at once", func(t *testing.T) {
		cur, err := getKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, api.AccessKeyKind, "", "k1", ""); err != nil {
			t.Fatal(err)
		}
		cr.changed(cur, true)
		if _, err := getKey(); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted key: %v, want not found", err)
		}
	})
	t.Run("a key deleted on another server fails once the watch shows it", func(t *testing.T) {
		if err := st.Delete(ctx, api.AccessKeyKind, "", "k2", ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "k2 refused", func() bool {
			var out api.AccessKey
			return errors.Is(cr.get(ctx, api.AccessKeyKind, "k2", &out), store.ErrNotFound)
		})
	})
}

func TestCredentialsWithoutLifeReadTheStore(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Interface: store.NewEtcd(etcdtest.Client(t))}
	if _, err := st.Create(ctx, &api.User{Metadata: api.ObjectMeta{Name: "bob"}}, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := newCredentials(st, nil)
	for range 3 {
		var u api.User
		if err := cr.get(ctx, api.UserKind, "bob", &u); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.gets.Load(); n != 3 {
		t.Errorf("%d store reads, want 3", n)
	}
}

package watchcache

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/watchtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// TestListCache checks that lists answered through the list cache are
// byte for byte the lists read straight from the store, as objects are
// created, changed and deleted in between, and that unchanged objects
// are not read again.
func TestListCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	c := newCache(t, st)
	if !c.CanList() {
		t.Fatal("the etcd store did not give the cache a list cache")
	}
	insts := make([]*api.Instance, 300) // enough to encode in parallel
	for i := range insts {
		in := benchInstance(i)
		if i%3 == 0 {
			in.Metadata.Project = "other"
			in.Metadata.Labels["sel"] = "yes"
		}
		if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		insts[i] = in
	}
	all := func(api.Object) bool { return true }

	// same compares a cached list with one read from the store, for
	// every scope and selector the API offers.
	same := func(step string) {
		t.Helper()
		for _, tc := range []struct{ project, selector string }{
			{"", ""},
			{"default", ""},
			{"other", ""},
			{"", "sel=yes"},
		} {
			sel, err := api.ParseSelector(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			got := httptest.NewRecorder()
			if err := c.List(ctx, got, api.InstanceKind, tc.project, sel, all, nil); err != nil {
				t.Fatal(err)
			}
			objs, meta, err := st.List(ctx, api.InstanceKind, tc.project, store.ListOptions{Selector: sel})
			if err != nil {
				t.Fatal(err)
			}
			want := httptest.NewRecorder()
			if err := c.WriteList(want, api.InstanceKind, meta, objs, nil); err != nil {
				t.Fatal(err)
			}
			if got.Body.String() != want.Body.String() {
				t.Fatalf("%s: list of project %q selector %q differs from the store's list:\n got %.300s\nwant %.300s",
					step, tc.project, tc.selector, got.Body.String(), want.Body.String())
			}
		}
	}
	same("first lists")
	before, _, err := c.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}

	// Change one, delete one, add one.
	changed := insts[4]
	changed.Status.Phase = api.PhaseStopped
	if err := st.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	gone := insts[7]
	if err := st.Delete(ctx, api.InstanceKind, gone.Metadata.Project, gone.Metadata.Name, ""); err != nil {
		t.Fatal(err)
	}
	added := benchInstance(1000)
	if _, err := st.Create(ctx, added, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	same("after a change, a delete and a create")

	after, _, err := c.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	byKey := func(cos []*cachedObject) map[string]*cachedObject {
		m := map[string]*cachedObject{}
		for _, co := range cos {
			m[co.obj.Meta().Project+"/"+co.obj.Meta().Name] = co
		}
		return m
	}
	b, a := byKey(before), byKey(after)
	key := func(in *api.Instance) string { return in.Metadata.Project + "/" + in.Metadata.Name }
	if len(a) != len(insts) || a[key(gone)] != nil || a[key(added)] == nil {
		t.Errorf("cached list has %d objects (want %d), deleted one there: %v, added one there: %v",
			len(a), len(insts), a[key(gone)] != nil, a[key(added)] != nil)
	}
	if a[key(changed)] == b[key(changed)] || a[key(changed)].obj.(*api.Instance).Status.Phase != api.PhaseStopped {
		t.Errorf("the changed instance was answered from the cache as it was before")
	}
	for _, in := range []*api.Instance{insts[0], insts[1], insts[299]} {
		if a[key(in)] != b[key(in)] {
			t.Errorf("unchanged %s was read again instead of taken from the cache", key(in))
		}
	}

	// A change a watch delivered is in the cache before any list reads it.
	_, rev, err := c.lists.list(ctx, api.InstanceKind, "default")
	if err != nil {
		t.Fatal(err)
	}
	ch := watchStream(t, c, Query{Kind: api.InstanceKind, Project: "default", Match: all, From: rev, Bookmark: time.Minute})
	changed.Status.Phase = api.PhaseRunning
	if err := st.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if typ, name := watchtest.NextObject(t, ch); typ != api.Modified || name != changed.Metadata.Name {
		t.Fatalf("watch saw %s %s", typ, name)
	}
	c.lists.mu.Lock()
	seen := c.lists.kinds[api.InstanceKind][key(changed)]
	c.lists.mu.Unlock()
	if seen == nil || seen.obj.(*api.Instance).Status.Phase != api.PhaseRunning {
		t.Fatal("the watched change is not in the list cache")
	}
	again, _, err := c.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	if byKey(again)[key(changed)] != seen {
		t.Error("the list read the watched change again instead of taking it from the cache")
	}
	same("after a watched change")
}

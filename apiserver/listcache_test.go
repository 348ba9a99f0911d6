package apiserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
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
	st := store.NewEtcd(etcdtest.Client(t))
	e := newEnvWith(t, st, Config{})
	if e.srv.lists == nil {
		t.Fatal("the etcd store did not give the server a list cache")
	}
	e.must(http.StatusCreated, "POST", "/v1/projects", e.admin, `{"metadata":{"name":"other"}}`)
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

	// same compares a cached list with one read from the store, for
	// every scope and selector the API offers.
	same := func(step string) {
		t.Helper()
		for _, c := range []struct{ path, project, selector string }{
			{"/v1/instances", "", ""},
			{"/v1/projects/default/instances", "default", ""},
			{"/v1/projects/other/instances", "other", ""},
			{"/v1/instances?labelSelector=" + url.QueryEscape("sel=yes"), "", "sel=yes"},
		} {
			got := e.must(http.StatusOK, "GET", c.path, e.admin, nil).body
			sel, err := api.ParseSelector(c.selector)
			if err != nil {
				t.Fatal(err)
			}
			objs, meta, err := st.List(ctx, api.InstanceKind, c.project, store.ListOptions{Selector: sel})
			if err != nil {
				t.Fatal(err)
			}
			want := httptest.NewRecorder()
			if err := writeList(want, api.InstanceKind, meta, objs); err != nil {
				t.Fatal(err)
			}
			if string(got) != want.Body.String() {
				t.Fatalf("%s: GET %s differs from the store's list:\n got %.300s\nwant %.300s", step, c.path, got, want.Body.String())
			}
		}
	}
	same("first lists")
	before, _, err := e.srv.lists.list(ctx, api.InstanceKind, "")
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

	after, _, err := e.srv.lists.list(ctx, api.InstanceKind, "")
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
	var listed api.List[api.Instance]
	e.must(http.StatusOK, "GET", "/v1/projects/default/instances", e.admin, nil).decode(t, &listed)
	ch, _ := e.watchStream("/v1/projects/default/instances?watch=true&resourceVersion="+listed.Metadata.ResourceVersion, e.admin)
	changed.Status.Phase = api.PhaseRunning
	if err := st.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if typ, name := nextObject(t, ch); typ != api.Modified || name != changed.Metadata.Name {
		t.Fatalf("watch saw %s %s", typ, name)
	}
	e.srv.lists.mu.Lock()
	seen := e.srv.lists.kinds[api.InstanceKind][key(changed)]
	e.srv.lists.mu.Unlock()
	if seen == nil || seen.obj.(*api.Instance).Status.Phase != api.PhaseRunning {
		t.Fatal("the watched change is not in the list cache")
	}
	again, _, err := e.srv.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	if byKey(again)[key(changed)] != seen {
		t.Error("the list read the watched change again instead of taking it from the cache")
	}
	same("after a watched change")
}

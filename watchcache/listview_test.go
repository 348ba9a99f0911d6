package watchcache

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// TestListViewSnapshot lists instances in a view from the list cache while
// a writer creates, changes and deletes them and a watch keeps the cache
// current: every list must be exactly the store's snapshot at the list's
// resourceVersion, each item the view of the object as it was then.
func TestListViewSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := etcdStore(t)
	c := newCache(t, st)
	snap := st.(store.Snapshots)
	const n = 300
	insts := make([]*api.Instance, n)
	for i := range insts {
		insts[i] = benchInstance(i)
		if _, err := st.Create(ctx, insts[i], store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all := func(api.Object) bool { return true }
	// The shared watch feeds the list cache as it goes.
	_, rev, err := c.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	watchStream(t, c, Query{Kind: api.InstanceKind, Match: all, From: rev, Bookmark: time.Minute})

	var wg sync.WaitGroup
	writeErr := make(chan error, 1)
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			var err error
			switch in := insts[i%n]; i % 3 {
			case 0, 1:
				in.Status.Phase = []api.InstancePhase{api.PhaseRunning, api.PhaseStopped}[i%2]
				in.Status.Reason = "step " + strconv.Itoa(i)
				err = st.Update(ctx, in)
			case 2:
				extra := benchInstance(n + i)
				if _, err = st.Create(ctx, extra, store.CreateOptions{}); err == nil {
					err = st.Delete(ctx, api.InstanceKind, extra.Metadata.Project, extra.Metadata.Name, "")
				}
			}
			if err != nil && ctx.Err() == nil {
				writeErr <- err
				return
			}
		}
	})
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)

	view := api.InstanceKind.ViewOf(api.ViewTable)
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; round < 20 && time.Now().Before(deadline); round++ {
		select {
		case err := <-writeErr:
			t.Fatalf("writer: %v", err)
		default:
		}
		got := httptest.NewRecorder()
		if err := c.List(ctx, got, api.InstanceKind, "", api.Selector{}, all, view); err != nil {
			t.Fatal(err)
		}
		var list api.List[json.RawMessage]
		if err := json.Unmarshal(got.Body.Bytes(), &list); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		rev, err := strconv.ParseInt(list.Metadata.ResourceVersion, 10, 64)
		if err != nil {
			t.Fatalf("round %d: resourceVersion %q", round, list.Metadata.ResourceVersion)
		}
		objs, err := snap.ReadAt(ctx, api.InstanceKind, "", rev, func(store.Version) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != len(list.Items) {
			t.Fatalf("round %d: %d items, the store held %d at revision %d", round, len(list.Items), len(objs), rev)
		}
		for i, o := range objs {
			want, err := json.Marshal(view.Of(prepare(o)))
			if err != nil {
				t.Fatal(err)
			}
			if string(list.Items[i]) != string(want) {
				t.Fatalf("round %d, item %d at revision %d:\n got %s\nwant %s", round, i, rev, list.Items[i], want)
			}
		}
	}
}

// TestListViewEncodedOnce checks that a view is encoded once per cached
// object and shared by the lists that follow.
func TestListViewEncodedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	c := newCache(t, st)
	for i := range 3 {
		if _, err := st.Create(ctx, benchInstance(i), store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	view := api.InstanceKind.ViewOf(api.ViewMap)
	all := func(api.Object) bool { return true }
	for range 2 {
		if err := c.List(ctx, httptest.NewRecorder(), api.InstanceKind, "", api.Selector{}, all, view); err != nil {
			t.Fatal(err)
		}
	}
	cos, _, err := c.lists.list(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range cos {
		first, err := co.viewed(view)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := co.viewed(view)
		if len(first) == 0 || &first[0] != &again[0] {
			t.Errorf("%s: the view was encoded again", co.obj.Meta().Name)
		}
		if len(first) >= len(co.raw) {
			t.Errorf("%s: the map view (%d bytes) is no smaller than the object (%d)", co.obj.Meta().Name, len(first), len(co.raw))
		}
	}
}

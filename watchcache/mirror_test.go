package watchcache

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// waitMirror waits until the mirror of kind k is ready.
func waitMirror(t *testing.T, c *Cache, k *api.Kind) *mirror {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := c.mirrorOf(k); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mirror of %s within 10s", k.Plural)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counterValue returns the value of counter c.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// listItems lists kind k in project through c.List and returns the items
// and the list's resourceVersion.
func listItems(t *testing.T, c *Cache, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool, view *api.View) ([]json.RawMessage, int64) {
	t.Helper()
	got := httptest.NewRecorder()
	if err := c.List(context.Background(), got, k, project, sel, match, view); err != nil {
		t.Fatal(err)
	}
	var list api.List[json.RawMessage]
	if err := json.Unmarshal(got.Body.Bytes(), &list); err != nil {
		t.Fatalf("decode %.200s: %v", got.Body.String(), err)
	}
	rev, err := strconv.ParseInt(list.Metadata.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q", list.Metadata.ResourceVersion)
	}
	return list.Items, rev
}

// TestMirrorListSnapshot lists instances from the kind's mirror while a
// writer creates, changes and deletes them and writes objects of another
// kind: every list must be exactly the store's snapshot at the list's
// resourceVersion, at or past the store's revision when the list began,
// and the lists must come from the mirror.
func TestMirrorListSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := etcdStore(t)
	c := newCache(t, st)
	snap, prog := st.(store.Snapshots), st.(store.Progress)
	const n = 200
	insts := make([]*api.Instance, n)
	for i := range insts {
		insts[i] = benchInstance(i)
		insts[i].Metadata.Project = []string{"a", "a-b", "b"}[i%3]
		if _, err := st.Create(ctx, insts[i], store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(t, c, api.InstanceKind)

	var wg sync.WaitGroup
	writeErr := make(chan error, 1)
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			var err error
			switch in := insts[i%n]; i % 4 {
			case 0, 1:
				in.Status.Reason = "step " + strconv.Itoa(i)
				err = st.Update(ctx, in)
			case 2:
				extra := benchInstance(n + i)
				extra.Metadata.Project = in.Metadata.Project
				if _, err = st.Create(ctx, extra, store.CreateOptions{}); err == nil {
					err = st.Delete(ctx, api.InstanceKind, extra.Metadata.Project, extra.Metadata.Name, "")
				}
			case 3:
				f := &api.Flavor{Metadata: api.ObjectMeta{Name: fmt.Sprintf("f-%d", i)}}
				_, err = st.Create(ctx, f, store.CreateOptions{})
			}
			if err != nil && ctx.Err() == nil {
				writeErr <- err
				return
			}
		}
	})
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)

	all := func(api.Object) bool { return true }
	view := api.InstanceKind.ViewOf(api.ViewTable)
	before := counterValue(t, c.metrics.mirrorLists)
	for round := range 30 {
		select {
		case err := <-writeErr:
			t.Fatalf("writer: %v", err)
		default:
		}
		project := []string{"", "a", "a-b", "b"}[round%4]
		v := []*api.View{nil, view}[round%2]
		start, err := prog.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		items, rev := listItems(t, c, api.InstanceKind, project, api.Selector{}, all, v)
		if rev < start {
			t.Fatalf("round %d: list at revision %d, the store was at %d before it", round, rev, start)
		}
		objs, err := snap.ReadAt(ctx, api.InstanceKind, project, rev, func(store.Version) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != len(items) {
			t.Fatalf("round %d (project %q): %d items, the store held %d at revision %d", round, project, len(items), len(objs), rev)
		}
		for i, o := range objs {
			var want []byte
			if v != nil {
				want, err = json.Marshal(v.Of(prepare(o)))
			} else {
				want, err = json.Marshal(prepare(o))
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(items[i]) != string(want) {
				t.Fatalf("round %d, item %d at revision %d:\n got %s\nwant %s", round, i, rev, items[i], want)
			}
		}
	}
	if got := counterValue(t, c.metrics.mirrorLists) - before; got < 25 {
		t.Errorf("%v of 30 lists came from the mirror", got)
	}
}

// TestMirrorReadsOwnWrites: a list that follows a write, of the kind or
// of another, holds it, from the mirror.
func TestMirrorReadsOwnWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	c := newCache(t, st)
	in := benchInstance(1)
	if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, c, api.InstanceKind)
	all := func(api.Object) bool { return true }
	before := counterValue(t, c.metrics.mirrorLists)
	for i := range 20 {
		switch i % 3 {
		case 0:
			in.Status.Reason = "step " + strconv.Itoa(i)
			if err := st.Update(ctx, in); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := st.Create(ctx, benchInstance(100+i), store.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := st.Delete(ctx, api.InstanceKind, "default", benchInstance(100+i-1).Metadata.Name, ""); err != nil {
				t.Fatal(err)
			}
			// Only another kind moves now: the mirror learns it is
			// current from the watch's progress.
			f := &api.Flavor{Metadata: api.ObjectMeta{Name: fmt.Sprintf("f-%d", i)}}
			if _, err := st.Create(ctx, f, store.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		items, rev := listItems(t, c, api.InstanceKind, "default", api.Selector{}, all, nil)
		if want := i%3 + 1; i%3 == 2 && len(items) != 1 || i%3 == 1 && len(items) != 2 {
			t.Fatalf("step %d: %d items, want %d", i, len(items), want)
		}
		var got api.Instance
		if err := json.Unmarshal(items[0], &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Reason != in.Status.Reason || got.Metadata.ResourceVersion != in.Metadata.ResourceVersion {
			t.Fatalf("step %d: list at %d holds %q at %s, the store %q at %s", i, rev,
				got.Status.Reason, got.Metadata.ResourceVersion, in.Status.Reason, in.Metadata.ResourceVersion)
		}
	}
	if got := counterValue(t, c.metrics.mirrorLists) - before; got != 20 {
		t.Errorf("%v of 20 lists came from the mirror", got)
	}
}

// TestMirrorFilters: lists from the mirror apply the label selector and
// the caller's match (what it may see) to whole objects, in a view or
// not, and a project's list holds only that project.
func TestMirrorFilters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	c := newCache(t, st)
	for i, p := range []string{"a", "a-b", "b", "a", "b", "a-b"} {
		in := benchInstance(i)
		in.Metadata.Project = p
		in.Metadata.Labels["i"] = strconv.Itoa(i % 2)
		if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(t, c, api.InstanceKind)
	sel, err := api.ParseSelector("i=0")
	if err != nil {
		t.Fatal(err)
	}
	onlyA := func(o api.Object) bool { return o.Meta().Project == "a" }
	all := func(api.Object) bool { return true }
	table := api.InstanceKind.ViewOf(api.ViewTable)
	for _, tc := range []struct {
		name    string
		project string
		sel     api.Selector
		match   func(api.Object) bool
		view    *api.View
		want    []string
	}{
		{"project a", "a", api.Selector{}, all, nil, []string{"a/i-00000", "a/i-00003"}},
		{"project a-b", "a-b", api.Selector{}, all, table, []string{"a-b/i-00001", "a-b/i-00005"}},
		{"all, may see a", "", api.Selector{}, onlyA, table, []string{"a/i-00000", "a/i-00003"}},
		{"project b, may see a", "b", api.Selector{}, onlyA, nil, nil},
		{"all, selected", "", sel, all, table, []string{"a/i-00000", "b/i-00002", "b/i-00004"}},
		{"project a, selected", "a", sel, all, nil, []string{"a/i-00000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, _ := listItems(t, c, api.InstanceKind, tc.project, tc.sel, tc.match, tc.view)
			var got []string
			for _, raw := range items {
				var in api.Instance
				if err := json.Unmarshal(raw, &in); err != nil {
					t.Fatal(err)
				}
				got = append(got, in.Metadata.Project+"/"+in.Metadata.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if counterValue(t, c.metrics.mirrorLists) == 0 {
		t.Error("no list came from the mirror")
	}
}

// TestMirrorWaitRuns: a wait for a revision the mirror does not reach
// runs out, and for a while after that lists do not wait at all, unless
// the mirror is already there.
func TestMirrorWaitRuns(t *testing.T) {
	m := newMirror(api.InstanceKind, nil, 5)
	ctx := context.Background()
	requests := 0
	request := func() { requests++ }
	if !m.waitFor(ctx, 5, request) || requests != 0 {
		t.Fatalf("a wait for the mirror's own revision: requests %d", requests)
	}
	go func() {
		// The watch moves on once a list waits: the wait ends.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			m.mu.Lock()
			waiting := m.moved != nil
			m.mu.Unlock()
			if waiting {
				break
			}
			time.Sleep(time.Millisecond)
		}
		m.advance(7)
	}()
	if !m.waitFor(ctx, 7, request) || requests == 0 {
		t.Fatalf("wait for 7: requests %d", requests)
	}
	// As after a wait that ran out.
	m.restUntil = time.Now().Add(time.Hour)
	start := time.Now()
	if m.waitFor(ctx, 8, request) {
		t.Fatal("a resting mirror made a list wait and answered")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a resting mirror made a list wait %v", d)
	}
	if !m.waitFor(ctx, 7, request) {
		t.Fatal("a resting mirror at the revision asked refused")
	}
	m.drop()
	if m.waitFor(ctx, 7, request) {
		t.Fatal("a dropped mirror answered")
	}
}

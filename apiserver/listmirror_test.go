package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// mirrorLists returns how many lists the server answered from a mirror.
func (e *env) mirrorLists() float64 {
	e.t.Helper()
	mfs, err := e.srv.metrics.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ouro_apiserver_mirror_lists_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	e.t.Fatal("no ouro_apiserver_mirror_lists_total")
	return 0
}

// TestListVisibilityFromMirror: full lists answered from the instances'
// mirror show each caller exactly what it may see (its projects' objects,
// a host its own instances), whole or in a view, with a selector or not,
// and a change shows in the next list.
func TestListVisibilityFromMirror(t *testing.T) {
	e := newEtcdEnv(t)
	ctx := context.Background()
	e.project("p")
	e.project("q")
	for i, pr := range []string{"p", "q", "default", "p", "q", "default"} {
		in := &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("i-%d", i), Project: pr,
			Labels: map[string]string{"odd": fmt.Sprint(i%2 == 1)}},
			Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}
		in.Status.Host = []string{"h1", "h2"}[i%2]
		if _, err := e.store.Create(ctx, in, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mia := e.userToken("mia", map[string]api.Role{"p": api.RoleMember})
	vic := e.userToken("vic", map[string]api.Role{"q": api.RoleViewer})
	h1 := e.hostToken("h1")
	names := func(path, token string) []string {
		t.Helper()
		var list api.List[api.Instance]
		e.must(http.StatusOK, "GET", path, token, nil).decode(t, &list)
		var out []string
		for _, in := range list.Items {
			out = append(out, in.Metadata.Project+"/"+in.Metadata.Name)
		}
		return out
	}
	// The first full list makes the mirror; wait until lists come from it.
	deadline := time.Now().Add(10 * time.Second)
	for before := e.mirrorLists(); ; {
		names("/v1/instances", e.admin)
		if e.mirrorLists() > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no list from the mirror within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := e.mirrorLists()
	cases := []struct {
		name, path, token string
		want              []string
	}{
		{"admin, all", "/v1/instances", e.admin, []string{"default/i-2", "default/i-5", "p/i-0", "p/i-3", "q/i-1", "q/i-4"}},
		{"member of p, all", "/v1/instances", mia, []string{"p/i-0", "p/i-3"}},
		{"member of p, all, table", "/v1/instances?view=table", mia, []string{"p/i-0", "p/i-3"}},
		{"member of p, all, selected", "/v1/instances?labelSelector=odd%3Dtrue", mia, []string{"p/i-3"}},
		{"member of p, project p", "/v1/projects/p/instances?view=table", mia, []string{"p/i-0", "p/i-3"}},
		{"viewer of q, all, map", "/v1/instances?view=map", vic, []string{"q/i-1", "q/i-4"}},
		{"host h1, its instances", "/v1/instances?host=h1", h1, []string{"default/i-2", "p/i-0", "q/i-4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.path, tc.token); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// A project the caller has no role in is not found, as before.
	e.must(http.StatusNotFound, "GET", "/v1/projects/q/instances", mia, nil)
	if got := e.mirrorLists() - before; got != float64(len(cases)) {
		t.Errorf("%v of %d lists came from the mirror", got, len(cases))
	}
	// A change shows at once: an instance moves to p.
	if err := e.store.Delete(ctx, api.InstanceKind, "q", "i-1", ""); err != nil {
		t.Fatal(err)
	}
	moved := &api.Instance{Metadata: api.ObjectMeta{Name: "i-1", Project: "p"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}
	if _, err := e.store.Create(ctx, moved, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := names("/v1/instances", mia), []string{"p/i-0", "p/i-1", "p/i-3"}; !slices.Equal(got, want) {
		t.Errorf("member of p after the move: got %v, want %v", got, want)
	}
	if got, want := names("/v1/instances", vic), []string{"q/i-4"}; !slices.Equal(got, want) {
		t.Errorf("viewer of q after the move: got %v, want %v", got, want)
	}
}

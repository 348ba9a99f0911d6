package watchcache

import (
	"context"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// TestObjects: Objects answers the store's objects of one project in
// key order, and sees a change at the next call.
func TestObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	c := newCache(t, st)
	var made []*api.Instance
	for i := range 5 {
		in := benchInstance(i)
		if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		made = append(made, in)
	}
	project := made[0].Metadata.Project
	names := func() []string {
		t.Helper()
		objs, err := c.Objects(ctx, api.InstanceKind, project)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			out = append(out, o.Meta().Name)
		}
		return out
	}
	first := names()
	if len(first) != 5 {
		t.Fatalf("Objects = %v, want 5", first)
	}
	for i := 1; i < len(first); i++ {
		if first[i-1] >= first[i] {
			t.Errorf("Objects out of order: %v", first)
		}
	}
	if err := st.Delete(ctx, api.InstanceKind, project, made[2].Metadata.Name, ""); err != nil {
		t.Fatal(err)
	}
	if got := names(); len(got) != 4 {
		t.Errorf("after a delete, Objects = %v, want 4", got)
	}
}

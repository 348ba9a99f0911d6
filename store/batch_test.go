package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// createInstances stores n instances named name-i and returns them as read.
func createInstances(t *testing.T, s Interface, name string, n int) []*api.Instance {
	t.Helper()
	ctx := testCtx(t)
	out := make([]*api.Instance, n)
	for i := range out {
		out[i] = instance("p", fmt.Sprintf("%s-%d", name, i), nil)
		if _, err := s.Create(ctx, out[i], CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestUpdateBatch(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	put, err := cli.Put(ctx, "/test/leader", "me")
	if err != nil {
		t.Fatal(err)
	}
	good := s.WithGuard(testGuard{"/test/leader", put.Header.Revision})
	insts := createInstances(t, s, "web", 5)

	// Another writer changes web-1 and deletes web-3 after they were read.
	changed := *insts[1]
	changed.Spec.Image = "theirs"
	if err := s.Update(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "web-3", ""); err != nil {
		t.Fatal(err)
	}

	objs := make([]api.Object, len(insts))
	for i, in := range insts {
		in.Status.Host = "h1"
		objs[i] = in
	}
	errs := good.UpdateBatch(ctx, objs)
	want := []error{nil, ErrConflict, nil, ErrNotFound, nil}
	for i, err := range errs {
		if want[i] == nil && err != nil || want[i] != nil && !errors.Is(err, want[i]) {
			t.Errorf("%s: %v, want %v", insts[i].Metadata.Name, err, want[i])
		}
	}
	for i, in := range insts {
		if want[i] != nil {
			continue
		}
		var got api.Instance
		if err := s.Get(ctx, api.InstanceKind, "p", in.Metadata.Name, &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Host != "h1" || got.Metadata.ResourceVersion != in.Metadata.ResourceVersion ||
			got.Metadata.UID != in.Metadata.UID {
			t.Errorf("%s stored as host %q version %s uid %s, want h1, %s, %s", in.Metadata.Name,
				got.Status.Host, got.Metadata.ResourceVersion, got.Metadata.UID, in.Metadata.ResourceVersion, in.Metadata.UID)
		}
	}
	var got api.Instance
	if err := s.Get(ctx, api.InstanceKind, "p", "web-1", &got); err != nil || got.Spec.Image != "theirs" || got.Status.Host != "" {
		t.Errorf("web-1 after its conflicting write: %+v, %v; want the other writer's", got.Spec, err)
	}
}

func TestUpdateBatchGuard(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	put, err := cli.Put(ctx, "/test/leader", "me")
	if err != nil {
		t.Fatal(err)
	}
	old := s.WithGuard(testGuard{"/test/leader", put.Header.Revision})
	insts := createInstances(t, s, "db", 3)
	// Leadership moves: the key is made again by another term.
	if _, err := cli.Delete(ctx, "/test/leader"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/test/leader", "other"); err != nil {
		t.Fatal(err)
	}
	// One object also conflicts: the guard still fails every write.
	changed := *insts[0]
	if err := s.Update(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	objs := make([]api.Object, len(insts))
	for i, in := range insts {
		in.Status.Host = "h1"
		objs[i] = in
	}
	for i, err := range old.UpdateBatch(ctx, objs) {
		if !errors.Is(err, ErrGuardFailed) {
			t.Errorf("%s: %v, want ErrGuardFailed", insts[i].Metadata.Name, err)
		}
	}
	for _, in := range insts[1:] {
		var got api.Instance
		if err := s.Get(ctx, api.InstanceKind, "p", in.Metadata.Name, &got); err != nil || got.Status.Host != "" {
			t.Errorf("%s written by a deposed guard: host %q, %v", in.Metadata.Name, got.Status.Host, err)
		}
	}
}

func TestUpdateBatchTooBig(t *testing.T) {
	s, _ := newTestStore(t)
	objs := make([]api.Object, MaxBatch+1)
	for i := range objs {
		objs[i] = instance("p", fmt.Sprintf("x-%d", i), nil)
	}
	for _, err := range s.UpdateBatch(testCtx(t), objs) {
		if err == nil {
			t.Fatal("a batch over MaxBatch was written")
		}
	}
}

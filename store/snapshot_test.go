package store

import (
	"slices"
	"strconv"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestSnapshots checks that Versions and ReadAt see one revision: a
// change made after Versions is not what ReadAt reads at its revision,
// and a project's versions never include another project's with a
// longer name that starts the same.
func TestSnapshots(t *testing.T) {
	s, _ := newTestStore(t)
	var snap Snapshots = s
	ctx := testCtx(t)
	seed(t, s, []string{"a", "ab"}, 3)

	vers, rev, err := snap.Versions(ctx, api.InstanceKind, "a")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range vers {
		keys = append(keys, v.Key)
	}
	if want := []string{"a/i00", "a/i01", "a/i02"}; !slices.Equal(keys, want) {
		t.Fatalf("versions of project a: %v, want %v", keys, want)
	}

	// Change a/i01 after the versions were read.
	var in api.Instance
	if err := s.Get(ctx, api.InstanceKind, "a", "i01", &in); err != nil {
		t.Fatal(err)
	}
	in.Status.Phase = api.PhaseStopped
	if err := s.Update(ctx, &in); err != nil {
		t.Fatal(err)
	}

	objs, err := snap.ReadAt(ctx, api.InstanceKind, "a", rev, func(v Version) bool { return v.Key != "a/i00" })
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Meta().Name != "i01" || objs[1].Meta().Name != "i02" {
		t.Fatalf("ReadAt selected %d objects: %v", len(objs), objs)
	}
	got := objs[0].(*api.Instance)
	if got.Status.Phase == api.PhaseStopped || got.Metadata.ResourceVersion != strconv.FormatInt(vers[1].Revision, 10) {
		t.Errorf("ReadAt at revision %d read the later change: phase %q, resourceVersion %s (listed %d)",
			rev, got.Status.Phase, got.Metadata.ResourceVersion, vers[1].Revision)
	}

	all, _, err := snap.Versions(ctx, api.InstanceKind, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Errorf("versions of all projects: %d, want 6", len(all))
	}
	if _, err := snap.ReadAt(ctx, api.InstanceKind, "a", 0, func(Version) bool { return true }); err == nil {
		t.Error("ReadAt at revision 0 did not fail")
	}
}

package volumes_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/agent/volumes"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
)

const mib = int64(1) << 20

type hostAPI struct{ c *client.Client }

func (h hostAPI) Client() *client.Client { return h.c }

// rig is an API server with host h1 and the local pool disks, a loop of
// h1 over a temporary directory, and the admin's client.
type rig struct {
	s     *apitest.Server
	admin *client.Client
	loop  *volumes.Loop
	dir   string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	hostToken := s.Join(t, "h1", "https://127.0.0.1:1")
	admin := s.Client(t, s.Admin)
	pool := &api.StoragePool{Metadata: api.ObjectMeta{Name: "disks"}, Spec: api.StoragePoolSpec{Type: api.PoolLocal}}
	if _, err := admin.Create(context.Background(), pool, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	loop := volumes.New(volumes.Config{Host: "h1", API: hostAPI{s.Client(t, hostToken)},
		Backends: &volumes.Pools{Dir: dir}, TempDir: dir})
	return &rig{s: s, admin: admin, loop: loop, dir: dir}
}

func (r *rig) pass(t *testing.T) {
	t.Helper()
	if err := r.loop.Pass(context.Background()); err != nil {
		t.Fatalf("pass: %v", err)
	}
}

func (r *rig) volume(t *testing.T, name string) *api.Volume {
	t.Helper()
	v, err := r.admin.GetVolume(context.Background(), "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (r *rig) file(v *api.Volume) string { return filepath.Join(r.dir, "disks", v.Status.ID+".raw") }

func TestVolumeLifecycle(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	v := &api.Volume{Metadata: api.ObjectMeta{Name: "data", Project: "default"},
		Spec: api.VolumeSpec{SizeBytes: 4 * mib, Pool: "disks", Host: "h1"}}
	if _, err := r.admin.Create(ctx, v, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	v = r.volume(t, "data")
	if v.Status.State != api.VolumeAvailable || v.Status.SizeBytes != 4*mib || v.Status.ID != api.BackendID("vol", v.Metadata.UID) {
		t.Fatalf("after create: %+v", v.Status)
	}
	if err := os.WriteFile(r.file(v), []byte("old-marker"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(r.file(v), 4*mib); err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.ResizeVolume(ctx, "default", "data", 8*mib); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	if v = r.volume(t, "data"); v.Status.SizeBytes != 8*mib {
		t.Fatalf("after resize: %+v", v.Status)
	}

	snap := &api.VolumeSnapshot{Metadata: api.ObjectMeta{Name: "s1", Project: "default"}, Spec: api.VolumeSnapshotSpec{Volume: "data"}}
	if _, err := r.admin.Create(ctx, snap, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	if err := r.admin.Get(ctx, api.VolumeSnapshotKind, "default", "s1", snap); err != nil || snap.Status.State != api.SnapshotReady {
		t.Fatalf("snapshot: %+v, %v", snap.Status, err)
	}
	if err := os.WriteFile(r.file(v), []byte("new-marker"), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := &api.Volume{Metadata: api.ObjectMeta{Name: "restored", Project: "default"},
		Spec: api.VolumeSpec{SizeBytes: 8 * mib, Pool: "disks", FromSnapshot: "s1"}}
	if _, err := r.admin.Create(ctx, restored, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	restored = r.volume(t, "restored")
	b, err := os.ReadFile(r.file(restored))
	if err != nil || string(b[:10]) != "old-marker" {
		t.Fatalf("restored volume holds %q, %v", b[:10], err)
	}

	// A second loop (the agent restarted) finds nothing to change.
	before := r.volume(t, "data").Metadata.ResourceVersion
	r.pass(t)
	if after := r.volume(t, "data").Metadata.ResourceVersion; after != before {
		t.Fatalf("an idle pass rewrote the volume: %s → %s", before, after)
	}

	// Deletes: the snapshot first, then the volume; the agent reports the
	// data gone and removes the files.
	if err := r.admin.Delete(ctx, api.VolumeSnapshotKind, "default", "s1"); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	if err := r.admin.Get(ctx, api.VolumeSnapshotKind, "default", "s1", snap); err != nil || snap.Status.State != admission.VolumeDeleted {
		t.Fatalf("deleted snapshot: %+v, %v", snap.Status, err)
	}
	// The controller would remove it now.
	if err := r.s.Store.Delete(ctx, api.VolumeSnapshotKind, "default", "s1", ""); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.Delete(ctx, api.VolumeKind, "default", "data"); err != nil {
		t.Fatal(err)
	}
	r.pass(t)
	if v := r.volume(t, "data"); v.Status.State != admission.VolumeDeleted {
		t.Fatalf("deleted volume: %+v", v.Status)
	}
	if _, err := os.Stat(r.file(v)); !os.IsNotExist(err) {
		t.Fatalf("volume file after delete: %v", err)
	}
}

func TestRunReactsToWatch(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.loop.Run(ctx)
	v := &api.Volume{Metadata: api.ObjectMeta{Name: "w", Project: "default"},
		Spec: api.VolumeSpec{SizeBytes: mib, Pool: "disks", Host: "h1"}}
	if _, err := r.admin.Create(ctx, v, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.volume(t, "w").Status.State != api.VolumeAvailable {
		if time.Now().After(deadline) {
			t.Fatalf("volume not available: %+v", r.volume(t, "w").Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

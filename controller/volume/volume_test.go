package volume

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

const waitLimit = 20 * time.Second

// newRig runs the controller over a real etcd and returns the raw store
// that the test writes with, as the API server and the agents would.
func newRig(t *testing.T) store.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	cli := etcdtest.Client(t)
	raw := store.NewEtcd(cli)
	st := raw.WithGuard(etcdtest.NewGuard(t, cli, "/test/leader"))
	log := etcdtest.Quiet()
	ins := []*cache.Informer{
		cache.New(st, api.VolumeKind, time.Second, log),
		cache.New(st, api.VolumeSnapshotKind, time.Second, log),
		cache.New(st, api.InstanceKind, time.Second, log),
	}
	c := New(Options{Store: st, Volumes: ins[0], Snapshots: ins[1], Instances: ins[2], Logger: log})
	for _, in := range ins {
		wait.Go(t, 10*time.Second, "informer", func(ctx context.Context) error { return in.Run(ctx) })
	}
	wait.Go(t, 10*time.Second, "controller", c.Run)
	return raw
}

func getVolume(t *testing.T, st store.Interface, name string) *api.Volume {
	t.Helper()
	var v api.Volume
	if err := st.Get(context.Background(), api.VolumeKind, "p", name, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func TestAttachedToFollowsInstances(t *testing.T) {
	st := newRig(t)
	ctx := context.Background()
	v := &api.Volume{Metadata: api.ObjectMeta{Name: "data", Project: "p"}, Spec: api.VolumeSpec{SizeBytes: 1, Pool: "x"},
		Status: api.VolumeStatus{State: api.VolumeAvailable, ID: "vol-1"}}
	if _, err := st.Create(ctx, v, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "db", Project: "p"}, Spec: api.InstanceSpec{Volumes: []api.InstanceVolume{{Name: "data"}}}}
	if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "volume in use by db", func() (bool, string) {
		s := getVolume(t, st, "data").Status
		return s.AttachedTo == "db" && s.State == api.VolumeInUse, s.State + " " + s.AttachedTo
	})
	// Deleting the instance detaches the volume and keeps it.
	if err := st.Delete(ctx, api.InstanceKind, "p", "db", ""); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "volume available", func() (bool, string) {
		s := getVolume(t, st, "data").Status
		return s.AttachedTo == "" && s.State == api.VolumeAvailable, s.State + " " + s.AttachedTo
	})
}

func TestRemovesDeletedOnceDataIsGone(t *testing.T) {
	st := newRig(t)
	ctx := context.Background()
	now := time.Now()
	for _, o := range []api.Object{
		&api.Volume{Metadata: api.ObjectMeta{Name: "going", Project: "p", DeletionTimestamp: &now, Finalizers: []string{admission.FinalizerVolume}},
			Status: api.VolumeStatus{State: api.VolumeDeleting}},
		&api.VolumeSnapshot{Metadata: api.ObjectMeta{Name: "snap", Project: "p", DeletionTimestamp: &now, Finalizers: []string{admission.FinalizerVolume}},
			Spec: api.VolumeSnapshotSpec{Volume: "going"}, Status: api.VolumeSnapshotStatus{State: admission.VolumeDeleted}},
	} {
		if _, err := st.Create(ctx, o, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(k *api.Kind, name string) func() bool {
		return func() bool {
			return errors.Is(st.Get(ctx, k, "p", name, k.New()), store.ErrNotFound)
		}
	}
	wait.For(t, waitLimit, "deleted snapshot removed", gone(api.VolumeSnapshotKind, "snap"))
	if gone(api.VolumeKind, "going")() {
		t.Fatal("a volume whose data is not gone was removed")
	}
	v := getVolume(t, st, "going")
	v.Status.State = admission.VolumeDeleted
	if err := st.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitLimit, "deleted volume removed", gone(api.VolumeKind, "going"))
}

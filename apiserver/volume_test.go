package apiserver_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
)

const gib = int64(1) << 30

// volServer is an API server with the Ready host h1, the local pool
// disks (capacity 10 GiB), a Ready image and instances web-0 and web-1 in
// project default, and project other with a member.
func volServer(t *testing.T) (*apitest.Server, *client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	s.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"},
		Spec: api.ImageSpec{Format: api.FormatOCI}, Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
	s.Create(t, &api.Host{Metadata: api.ObjectMeta{Name: "h1"}, Status: api.HostStatus{Phase: api.HostReady}})
	s.Project(t, "other")
	admin := s.Client(t, s.Admin)
	ctx := context.Background()
	for _, o := range []api.Object{
		&api.StoragePool{Metadata: api.ObjectMeta{Name: "disks"}, Spec: api.StoragePoolSpec{Type: api.PoolLocal, CapacityGiB: 10}},
		&api.Instance{Metadata: api.ObjectMeta{Name: "web-0", Project: "default"}, Spec: api.InstanceSpec{Image: "busybox", Flavor: "small"}},
		&api.Instance{Metadata: api.ObjectMeta{Name: "web-1", Project: "default"}, Spec: api.InstanceSpec{Image: "busybox", Flavor: "small"}},
	} {
		if _, err := admin.Create(ctx, o, client.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", o.GetKind(), err)
		}
	}
	return s, admin
}

func newVolume(name string, size int64) *api.Volume {
	return &api.Volume{Metadata: api.ObjectMeta{Name: name, Project: "default"}, Spec: api.VolumeSpec{SizeBytes: size, Pool: "disks"}}
}

func TestStoragePoolAdminOnlyAndKeyHidden(t *testing.T) {
	s, admin := volServer(t)
	ctx := context.Background()
	key := "QVFCaGVsbG8td29ybGQtc2VjcmV0LWtleQ=="
	ceph := &api.StoragePool{Metadata: api.ObjectMeta{Name: "rbd"}, Spec: api.StoragePoolSpec{Type: api.PoolCeph,
		Ceph: &api.CephPool{Monitors: []string{"10.0.0.5:6789"}, Pool: "volumes", Key: key}}}
	member := s.Client(t, s.Token(t, "ann", "default", api.RoleMember))
	if _, err := member.Create(ctx, ceph, client.CreateOptions{}); apiErr(t, err).Status != http.StatusForbidden {
		t.Fatalf("member created a pool: %v", err)
	}
	if _, err := admin.Create(ctx, ceph, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !ceph.Status.KeySet {
		t.Fatal("created pool: keySet false")
	}
	for _, c := range []*client.Client{admin, member} {
		var got api.StoragePool
		if err := c.Get(ctx, api.StoragePoolKind, "", "rbd", &got); err != nil || got.Spec.Ceph.Key != "" {
			t.Fatalf("read pool: key %q, %v", got.Spec.Ceph.Key, err)
		}
	}
	var got api.StoragePool
	if err := admin.Get(ctx, api.StoragePoolKind, "", "rbd", &got); err != nil {
		t.Fatal(err)
	}
	if _, err := member.StoragePoolKey(ctx, "rbd"); apiErr(t, err).Status != http.StatusForbidden {
		t.Fatalf("member read the key: %v", err)
	}
	if k, err := admin.StoragePoolKey(ctx, "rbd"); err != nil || k != key {
		t.Fatalf("admin read key %q, %v", k, err)
	}
	// An update without the key keeps it.
	got.Spec.Ceph.Monitors = []string{"10.0.0.6"}
	if err := admin.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if k, _ := admin.StoragePoolKey(ctx, "rbd"); k != key {
		t.Fatalf("key after update = %q", k)
	}
	bad := []struct {
		field string
		spec  api.StoragePoolSpec
	}{
		{"spec.type", api.StoragePoolSpec{Type: "nfs"}},
		{"spec.ceph", api.StoragePoolSpec{Type: api.PoolCeph}},
		{"spec.ceph.monitors", api.StoragePoolSpec{Type: api.PoolCeph, Ceph: &api.CephPool{Pool: "v", Key: key}}},
		{"spec.ceph.monitors[0]", api.StoragePoolSpec{Type: api.PoolCeph, Ceph: &api.CephPool{Monitors: []string{"a b:99999"}, Pool: "v", Key: key}}},
		{"spec.ceph.key", api.StoragePoolSpec{Type: api.PoolCeph, Ceph: &api.CephPool{Monitors: []string{"m1"}, Pool: "v", Key: "not base64!"}}},
		{"spec.capacityGiB", api.StoragePoolSpec{Type: api.PoolLocal, CapacityGiB: -1}},
	}
	for _, tt := range bad {
		p := &api.StoragePool{Metadata: api.ObjectMeta{Name: "bad"}, Spec: tt.spec}
		_, err := admin.Create(ctx, p, client.CreateOptions{})
		if e := apiErr(t, err); e.Field != tt.field {
			t.Errorf("%s: field %q: %v", tt.field, e.Field, err)
		}
	}
	if err := admin.Get(ctx, api.StoragePoolKind, "", "bad", &api.StoragePool{}); err == nil {
		t.Fatal("a refused pool was stored")
	}
}

func TestVolumeCreateRefusals(t *testing.T) {
	_, admin := volServer(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		edit  func(*api.Volume)
		field string
	}{
		{"size zero", func(v *api.Volume) { v.Spec.SizeBytes = 0 }, "spec.sizeBytes"},
		{"beyond the pool", func(v *api.Volume) { v.Spec.SizeBytes = 11 * gib }, "spec.sizeBytes"},
		{"unknown pool", func(v *api.Volume) { v.Spec.Pool = "nope" }, "spec.pool"},
		{"unknown snapshot", func(v *api.Volume) { v.Spec.FromSnapshot = "nope" }, "spec.fromSnapshot"},
		{"unknown image", func(v *api.Volume) { v.Spec.FromImage = "nope" }, "spec.fromImage"},
		{"unknown host", func(v *api.Volume) { v.Spec.Host = "nope" }, "spec.host"},
	}
	for _, tt := range tests {
		v := newVolume("v", gib)
		tt.edit(v)
		_, err := admin.Create(ctx, v, client.CreateOptions{})
		if e := apiErr(t, err); e.Field != tt.field {
			t.Errorf("%s: field %q: %v", tt.name, e.Field, err)
		}
	}
	if vols, _, _ := client.ListAll[api.Volume](ctx, admin, api.VolumeKind, "default", client.ListOptions{}); len(vols) != 0 {
		t.Fatalf("refused creates stored %d volumes", len(vols))
	}
	v := newVolume("data", gib)
	if _, err := admin.Create(ctx, v, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v.Spec.Host != "h1" || v.Status.State != api.VolumeCreating {
		t.Fatalf("created volume: host %q, state %q", v.Spec.Host, v.Status.State)
	}
	if _, err := admin.ResizeVolume(ctx, "default", "data", gib/2); apiErr(t, err).Field != "spec.sizeBytes" {
		t.Fatalf("shrink: %v", err)
	}
	if got, err := admin.ResizeVolume(ctx, "default", "data", 2*gib); err != nil || got.Spec.SizeBytes != 2*gib {
		t.Fatalf("grow: %v", err)
	}
}

func TestVolumeAttachRaceOneWins(t *testing.T) {
	_, admin := volServer(t)
	ctx := context.Background()
	if _, err := admin.Create(ctx, newVolume("data", gib), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, inst := range []string{"web-0", "web-1"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = admin.AttachVolume(ctx, "default", inst, api.InstanceVolume{Name: "data", Path: "/data"})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if e := apiErr(t, err); e.Code != api.CodeInUse || e.Field != "spec.volumes[0].name" {
				t.Fatalf("loser's error: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d attaches won: %v", round, won, errs)
		}
		if _, err := admin.DetachVolume(ctx, "default", "data", ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVolumeDeleteRefusedWhileUsed(t *testing.T) {
	s, admin := volServer(t)
	ctx := context.Background()
	if _, err := admin.Create(ctx, newVolume("data", gib), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := admin.AttachVolume(ctx, "default", "web-0", api.InstanceVolume{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Spec.Placement == nil || in.Spec.Placement.Host != "h1" {
		t.Fatalf("instance not pinned to the volume's host: %+v", in.Spec.Placement)
	}
	err = admin.Delete(ctx, api.VolumeKind, "default", "data")
	if e := apiErr(t, err); e.Code != api.CodeInUse || e.Message != "volume data is attached to instance web-0" {
		t.Fatalf("delete attached: %v", err)
	}
	// A snapshot needs the volume made by its agent.
	s.Update(t, api.VolumeKind, "default", "data", func(o api.Object) {
		o.(*api.Volume).Status = api.VolumeStatus{State: api.VolumeInUse, ID: "vol-1"}
	})
	snap := &api.VolumeSnapshot{Metadata: api.ObjectMeta{Name: "s1", Project: "default"}, Spec: api.VolumeSnapshotSpec{Volume: "data"}}
	if _, err := admin.Create(ctx, snap, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DetachVolume(ctx, "default", "data", "web-0"); err != nil {
		t.Fatal(err)
	}
	err = admin.Delete(ctx, api.VolumeKind, "default", "data")
	if e := apiErr(t, err); e.Code != api.CodeInUse || e.Message != "volume data is in use by VolumeSnapshot default/s1" {
		t.Fatalf("delete with a snapshot: %v", err)
	}
	// Deleting the snapshot marks it for its agent; once it reports the
	// data gone and the controller removed it, the volume may go.
	if err := admin.Delete(ctx, api.VolumeSnapshotKind, "default", "s1"); err != nil {
		t.Fatal(err)
	}
	var marked api.VolumeSnapshot
	if err := admin.Get(ctx, api.VolumeSnapshotKind, "default", "s1", &marked); err != nil || marked.Metadata.DeletionTimestamp == nil || marked.Status.State != api.SnapshotDeleting {
		t.Fatalf("deleted snapshot: %+v, %v", marked.Metadata, err)
	}
	if err := s.Store.Delete(ctx, api.VolumeSnapshotKind, "default", "s1", ""); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(ctx, api.VolumeKind, "default", "data"); err != nil {
		t.Fatal(err)
	}
	// A volume being deleted cannot be attached.
	_, err = admin.AttachVolume(ctx, "default", "web-1", api.InstanceVolume{Name: "data"})
	if e := apiErr(t, err); e.Field != "spec.volumes[0].name" {
		t.Fatalf("attach of a deleted volume: %v", err)
	}
}

func TestVolumeCrossProjectHidden(t *testing.T) {
	s, admin := volServer(t)
	ctx := context.Background()
	if _, err := admin.Create(ctx, newVolume("data", gib), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Update(t, api.VolumeKind, "default", "data", func(o api.Object) {
		o.(*api.Volume).Status = api.VolumeStatus{State: api.VolumeAvailable, ID: "vol-1"}
	})
	other := s.Client(t, s.Token(t, "eve", "other", api.RoleMember))
	if err := other.Get(ctx, api.VolumeKind, "default", "data", &api.Volume{}); apiErr(t, err).Status != http.StatusNotFound {
		t.Fatalf("get across projects: %v", err)
	}
	snap := &api.VolumeSnapshot{Metadata: api.ObjectMeta{Name: "s", Project: "default"}, Spec: api.VolumeSnapshotSpec{Volume: "data"}}
	if _, err := other.Create(ctx, snap, client.CreateOptions{}); apiErr(t, err).Status != http.StatusNotFound {
		t.Fatalf("snapshot across projects: %v", err)
	}
	// An instance of project other names its own project's volumes only.
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "thief", Project: "other"},
		Spec: api.InstanceSpec{Image: "default/busybox", Flavor: "small", Volumes: []api.InstanceVolume{{Name: "data"}}}}
	s.Update(t, api.ImageKind, "default", "busybox", func(o api.Object) { o.(*api.Image).Spec.Public = true })
	if _, err := other.Create(ctx, in, client.CreateOptions{}); apiErr(t, err).Field != "spec.volumes[0].name" {
		t.Fatalf("attach across projects: %v", err)
	}
	if vols, _, err := client.ListAll[api.Volume](ctx, other, api.VolumeKind, "", client.ListOptions{}); err != nil || len(vols) != 0 {
		t.Fatalf("other lists %d volumes, %v", len(vols), err)
	}
}

// TestVolumeStatusAttachedToIsTheControllers: a host's status write keeps
// attachedTo as stored and the state agrees with it; another host may not
// write it at all.
func TestVolumeStatusAttachedToIsTheControllers(t *testing.T) {
	s, admin := volServer(t)
	ctx := context.Background()
	h2 := s.Client(t, s.Join(t, "h2", "https://127.0.0.1:1"))
	h3 := s.Client(t, s.Join(t, "h3", "https://127.0.0.1:1"))
	v := newVolume("data", gib)
	v.Spec.Host = "h2"
	if _, err := admin.Create(ctx, v, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Update(t, api.VolumeKind, "default", "data", func(o api.Object) {
		o.(*api.Volume).Status = api.VolumeStatus{State: api.VolumeInUse, ID: "vol-1", AttachedTo: "web-0"}
	})
	tests := []struct {
		write, want api.VolumeStatus
	}{
		{api.VolumeStatus{State: api.VolumeAvailable, ID: "vol-1"}, api.VolumeStatus{State: api.VolumeInUse, ID: "vol-1", AttachedTo: "web-0"}},
		{api.VolumeStatus{State: api.VolumeError, ID: "vol-1", Message: "disk gone"}, api.VolumeStatus{State: api.VolumeError, ID: "vol-1", Message: "disk gone", AttachedTo: "web-0"}},
	}
	for _, tt := range tests {
		cur, _ := admin.GetVolume(ctx, "default", "data")
		cur.Status = tt.write
		if err := h2.UpdateStatus(ctx, cur); err != nil {
			t.Fatal(err)
		}
		got, _ := admin.GetVolume(ctx, "default", "data")
		if got.Status != tt.want {
			t.Errorf("after writing %+v: %+v, want %+v", tt.write, got.Status, tt.want)
		}
	}
	cur, _ := admin.GetVolume(ctx, "default", "data")
	if err := h3.UpdateStatus(ctx, cur); apiErr(t, err).Status != http.StatusForbidden {
		t.Fatalf("another host's status write: %v", err)
	}
}

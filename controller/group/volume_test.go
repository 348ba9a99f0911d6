package group_test

import (
	"context"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// TestStatefulMemberGetsItsVolumeBack: members of a stateful group with a
// volume template get volumes of their own; a member replaced on another
// host after its host was lost gets the same volume back (a ceph pool:
// any host reaches it).
func TestStatefulMemberGetsItsVolumeBack(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	ctx := context.Background()
	pool := &api.StoragePool{Metadata: api.ObjectMeta{Name: "rbd"}, Spec: api.StoragePoolSpec{Type: api.PoolCeph,
		Ceph: &api.CephPool{Monitors: []string{"10.0.0.5"}, Pool: "volumes", Key: "QVFCaGVsbG8td29ybGQtc2VjcmV0LWtleQ=="}}}
	if _, err := r.cl.Create(ctx, pool, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g := newGroup("db", 2)
	g.Spec.Stateful = true
	g.Spec.VolumeTemplates = []api.VolumeTemplate{{Name: "data", SizeBytes: 1 << 30, Pool: "rbd", Path: "/var/lib/db"}}
	r.create(g)
	r.eventually("2 members", func() bool { return r.settled("db", 2) })
	vol := func(name string) *api.Volume {
		v, err := r.cl.GetVolume(ctx, "default", name)
		if err != nil {
			t.Fatalf("volume %s: %v", name, err)
		}
		return v
	}
	for _, m := range []string{"db-0", "db-1"} {
		in := r.members("db")[m]
		want := []api.InstanceVolume{{Name: m + "-data", Path: "/var/lib/db"}}
		if len(in.Spec.Volumes) != 1 || in.Spec.Volumes[0] != want[0] {
			t.Fatalf("%s volumes %+v, want %+v", m, in.Spec.Volumes, want)
		}
		vol(m + "-data")
	}
	before := vol("db-0-data").Metadata.UID
	old := r.members("db")["db-0"]

	r.addHost("h2")
	r.stopHost("h1")
	r.eventually("db-0 back on h2", func() bool {
		in := r.members("db")["db-0"]
		return in != nil && in.Metadata.UID != old.Metadata.UID && in.Status.Host == "h2" && r.settled("db", 2)
	})
	if in := r.members("db")["db-0"]; len(in.Spec.Volumes) != 1 || in.Spec.Volumes[0].Name != "db-0-data" {
		t.Fatalf("replacement volumes %+v", in.Spec.Volumes)
	}
	if after := vol("db-0-data").Metadata.UID; after != before {
		t.Fatalf("the replacement got a new volume (uid %s, was %s)", after, before)
	}

	// Volume templates need a stateful group.
	bad := newGroup("web", 1)
	bad.Spec.VolumeTemplates = g.Spec.VolumeTemplates
	if _, err := r.cl.Create(ctx, bad, client.CreateOptions{}); err == nil {
		t.Fatal("a stateless group with volume templates was created")
	}
}

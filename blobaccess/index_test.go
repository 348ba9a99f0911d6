package blobaccess

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// etcdStore starts an embedded etcd for the rest of the test.
func etcdStore(t testing.TB) store.Interface {
	t.Helper()
	return store.NewEtcd(etcdtest.Client(t))
}

func hexOf(i int) string { return fmt.Sprintf("%064x", i) }

func image(project, name string, public bool, digests ...string) *api.Image {
	img := &api.Image{Metadata: api.ObjectMeta{Name: name, Project: project}, Spec: api.ImageSpec{Public: public, Format: api.FormatOCI}}
	for _, d := range digests {
		img.Spec.Layers = append(img.Spec.Layers, api.Blob{Digest: "sha256:" + d, Size: 1, MediaType: api.MediaTypeLayerTar})
	}
	return img
}

func instance(project, name, image, host string) *api.Instance {
	return &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: project},
		Spec: api.InstanceSpec{Image: image, Flavor: "tiny"}, Status: api.InstanceStatus{Host: host}}
}

func mustCreate(t testing.TB, st store.Interface, objs ...api.Object) {
	t.Helper()
	for _, o := range objs {
		if _, err := st.Create(context.Background(), o, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIndexFollowsStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	now := time.Now()
	x := New(Config{Store: st, Now: func() time.Time { return now }})
	viewer := &auth.Identity{User: "vic", Roles: map[string]api.Role{"b": api.RoleViewer}}
	member := &auth.Identity{User: "mia", Roles: map[string]api.Role{"a": api.RoleMember}}
	host := &auth.Identity{Host: "h1"}
	admin := &auth.Identity{User: "root", ClusterAdmin: true}
	check := func(what string, id *auth.Identity, digest string, want bool) {
		t.Helper()
		got, err := x.CanRead(ctx, id, digest)
		if err != nil || got != want {
			t.Errorf("%s: CanRead = %v, %v; want %v", what, got, err, want)
		}
	}
	priv := image("a", "secret", false, hexOf(1), hexOf(2))
	mustCreate(t, st, priv, image("p", "shared", true, hexOf(3)))
	check("viewer, other project", viewer, hexOf(1), false)
	check("member", member, hexOf(2), true)
	check("viewer, public", viewer, hexOf(3), true)
	check("admin, no image", admin, hexOf(9), true)
	check("host, no instance", host, hexOf(1), false)

	in := instance("a", "web", "a/secret", "")
	mustCreate(t, st, in)
	check("host, instance not placed", host, hexOf(1), false)
	in.Status.Host = "h1"
	if err := st.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	check("host, instance placed", host, hexOf(1), true)
	check("other host", &auth.Identity{Host: "h2"}, hexOf(1), false)

	// Publishing and deleting show at once.
	priv.Spec.Public = true
	if err := st.Update(ctx, priv); err != nil {
		t.Fatal(err)
	}
	check("viewer, published", viewer, hexOf(1), true)
	if err := st.Delete(ctx, api.ImageKind, "a", "secret", ""); err != nil {
		t.Fatal(err)
	}
	check("viewer, deleted", viewer, hexOf(1), false)
	if err := st.Delete(ctx, api.InstanceKind, "a", "web", ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, st, image("a", "again", false, hexOf(1)))
	check("host, instance deleted", host, hexOf(1), false)

	// Uploads let their user refer to a blob for UploadTTL.
	if ok, _ := x.CanRefer(ctx, viewer, hexOf(7)); ok {
		t.Error("refer to a blob neither read nor uploaded")
	}
	x.RecordUpload("vic", hexOf(7))
	if ok, _ := x.CanRefer(ctx, viewer, hexOf(7)); !ok {
		t.Error("refer to an uploaded blob refused")
	}
	if ok, _ := x.CanRead(ctx, viewer, hexOf(7)); ok {
		t.Error("an upload made the blob readable")
	}
	now = now.Add(DefaultUploadTTL + time.Second)
	if ok, _ := x.CanRefer(ctx, viewer, hexOf(7)); ok {
		t.Error("refer to a blob uploaded too long ago")
	}
	if ok, _ := x.CanRefer(ctx, host, hexOf(3)); ok {
		t.Error("a host may refer to blobs")
	}
}

// BenchmarkCanRead decides reads among 1,000 images (3 layers each) and
// 5,000 instances on 50 hosts, with an image created between reads or
// not.
func BenchmarkCanRead(b *testing.B) {
	ctx := context.Background()
	st := etcdStore(b)
	for i := range 1000 {
		mustCreate(b, st, image(fmt.Sprintf("p%d", i%50), fmt.Sprintf("img%d", i), i%100 == 0, hexOf(3*i), hexOf(3*i+1), hexOf(3*i+2)))
	}
	for i := range 5000 {
		mustCreate(b, st, instance(fmt.Sprintf("p%d", i%50), fmt.Sprintf("in%d", i), fmt.Sprintf("p%d/img%d", i%50, i%1000), fmt.Sprintf("h%d", i%50)))
	}
	user := &auth.Identity{User: "u", Roles: map[string]api.Role{"p7": api.RoleViewer}}
	host := &auth.Identity{Host: "h7"}
	for _, bb := range []struct {
		name   string
		id     *auth.Identity
		create bool
	}{{"user", user, false}, {"host", host, false}, {"user after create", user, true}} {
		b.Run(bb.name, func(b *testing.B) {
			x := New(Config{Store: st})
			if _, err := x.CanRead(ctx, bb.id, hexOf(21)); err != nil { // the first read mirrors everything
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if bb.create {
					b.StopTimer()
					mustCreate(b, st, image("p7", fmt.Sprintf("new%d-%d", b.N, i), false, hexOf(100000+i)))
					b.StartTimer()
				}
				if ok, err := x.CanRead(ctx, bb.id, hexOf(21)); err != nil || !ok {
					b.Fatalf("CanRead = %v, %v", ok, err)
				}
			}
		})
	}
}

func TestReferenced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	st := etcdStore(t)
	x := New(Config{Store: st})
	mustCreate(t, st, image("a", "one", false, hexOf(1), hexOf(2)), image("b", "two", true, hexOf(2), hexOf(3)))
	got, err := x.Referenced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{hexOf(1): true, hexOf(2): true, hexOf(3): true}
	if len(got) != len(want) {
		t.Fatalf("Referenced = %v, want %v", got, want)
	}
	for d := range want {
		if !got[d] {
			t.Errorf("Referenced lacks %s", d)
		}
	}
	if err := st.Delete(ctx, api.ImageKind, "a", "one", ""); err != nil {
		t.Fatal(err)
	}
	got, err = x.Referenced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got[hexOf(1)] || !got[hexOf(2)] || len(got) != 2 {
		t.Errorf("after deleting an image, Referenced = %v", got)
	}
}

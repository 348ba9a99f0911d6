package ec2record

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/ec2"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

var t0 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

// run starts the controller and its informers on st until the test ends.
func run(t *testing.T, st store.Interface) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	instances := cache.New(st, api.InstanceKind, time.Minute, etcdtest.Quiet())
	hosts := cache.New(st, api.HostKind, time.Minute, etcdtest.Quiet())
	c := New(Options{Store: st, Instances: instances, Hosts: hosts, Logger: etcdtest.Quiet(), Now: func() time.Time { return t0 }})
	done := make(chan struct{}, 3)
	for _, f := range []func(context.Context) error{instances.Run, hosts.Run, c.Run} {
		go func() { f(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
}

func create(t *testing.T, st store.Interface, obj api.Object) {
	t.Helper()
	if _, err := st.Create(context.Background(), obj, store.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", obj.Meta().Name, err)
	}
}

// recordOf reads the record of in, or nil.
func recordOf(t *testing.T, st store.Interface, in *api.Instance) *api.Event {
	t.Helper()
	want := ec2.TerminatedRecord(in, nil, nil, t0, "")
	var e api.Event
	err := st.Get(context.Background(), api.EventKind, in.Metadata.Project, want.Metadata.Name, &e)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		t.Fatal(err)
	}
	return &e
}

func TestRecordsDeletedInstances(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	ctx := context.Background()
	create(t, st, &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: "h1", Labels: map[string]string{api.LabelZone: "rack-a"}}})
	create(t, st, &api.Image{Kind: "Image", Metadata: api.ObjectMeta{Name: "busybox", Project: "images"}, Spec: api.ImageSpec{Public: true}})
	run(t, st)

	// Marked for deletion (a REST DELETE of a placed instance).
	web := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web", Project: "p", Labels: map[string]string{"tier": "front"}},
		Spec: api.InstanceSpec{Image: "busybox", Flavor: "tiny", KeyName: "k"}, Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h1"}}
	create(t, st, web)
	// Deleted at once without the mark (never placed).
	lone := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "lone", Project: "p"}, Spec: api.InstanceSpec{Flavor: "tiny"}}
	create(t, st, lone)
	// Alive: never recorded.
	keep := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "keep", Project: "p"}, Spec: api.InstanceSpec{Flavor: "tiny"}}
	create(t, st, keep)

	var cur api.Instance
	if err := st.Get(ctx, api.InstanceKind, "p", "web", &cur); err != nil {
		t.Fatal(err)
	}
	now := t0
	cur.Metadata.DeletionTimestamp = &now
	if err := st.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the record of web", func() bool { return recordOf(t, st, web) != nil })
	e := recordOf(t, st, web)
	l := e.Metadata.Labels
	if e.Reason != ec2.ReasonTerminated || e.Source != "ec2" || e.Object.UID != web.Metadata.UID || l["tier"] != "front" {
		t.Errorf("record of web = %+v", e)
	}
	var img api.Image
	if err := st.Get(ctx, api.ImageKind, "images", "busybox", &img); err != nil {
		t.Fatal(err)
	}
	want := ec2.TerminatedRecord(web, &img, &api.Host{Metadata: api.ObjectMeta{Labels: map[string]string{api.LabelZone: "rack-a"}}}, t0, "")
	for k, v := range want.Metadata.Labels {
		if l[k] != v {
			t.Errorf("record of web: label %s = %q, want %q (the public image's id, the host's zone, the flavor, the key)", k, l[k], v)
		}
	}

	if err := st.Get(ctx, api.InstanceKind, "p", "lone", &cur); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, api.InstanceKind, "p", "lone", cur.Metadata.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the record of lone", func() bool { return recordOf(t, st, lone) != nil })
	if recordOf(t, st, keep) != nil {
		t.Error("an instance not deleted was recorded")
	}
}

// A record TerminateInstances wrote already is left as it is.
func TestKeepsTheRecordThereIs(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	ctx := context.Background()
	in := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web", Project: "p"}, Spec: api.InstanceSpec{Flavor: "tiny"}}
	create(t, st, in)
	first := ec2.TerminatedRecord(in, nil, nil, t0, "terminated through the EC2 API")
	if _, err := st.Create(ctx, first, store.CreateOptions{TTL: ec2.TerminatedFor}); err != nil {
		t.Fatal(err)
	}
	run(t, st)
	var cur api.Instance
	if err := st.Get(ctx, api.InstanceKind, "p", "web", &cur); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, api.InstanceKind, "p", "web", cur.Metadata.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	// A second instance deleted after the first is recorded: by then the
	// first one's turn has come and gone.
	other := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "other", Project: "p"}, Spec: api.InstanceSpec{Flavor: "tiny"}}
	create(t, st, other)
	if err := st.Get(ctx, api.InstanceKind, "p", "other", &cur); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, api.InstanceKind, "p", "other", cur.Metadata.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the record of other", func() bool { return recordOf(t, st, other) != nil })
	if e := recordOf(t, st, in); e == nil || e.Message != "terminated through the EC2 API" {
		t.Errorf("the record TerminateInstances wrote = %+v; want it unchanged", e)
	}
}

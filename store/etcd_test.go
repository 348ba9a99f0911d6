package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// newTestStore returns a store over a fresh embedded etcd.
func newTestStore(tb testing.TB) (*etcdStore, *clientv3.Client) {
	tb.Helper()
	cli := etcdtest.Client(tb)
	return NewEtcd(cli).(*etcdStore), cli
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func instance(project, name string, labels map[string]string) *api.Instance {
	return &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: project, Labels: labels}}
}

func TestCreateGet(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)

	in := instance("p", "web", map[string]string{"app": "web"})
	in.Spec.Image = "debian"
	existed, err := s.Create(ctx, in, CreateOptions{})
	if err != nil || existed {
		t.Fatalf("Create = %v, %v", existed, err)
	}
	m := in.Metadata
	if m.UID == "" || m.Generation != 1 || m.ResourceVersion == "" || m.CreationTimestamp.IsZero() {
		t.Fatalf("Create did not set metadata: %+v", m)
	}

	var got api.Instance
	got.Metadata.Labels = map[string]string{"stale": "x"} // Get must not merge into old state
	if err := s.Get(ctx, api.InstanceKind, "p", "web", &got); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Metadata.UID != m.UID || got.Metadata.ResourceVersion != m.ResourceVersion ||
		got.Spec.Image != "debian" || len(got.Metadata.Labels) != 1 || !got.Metadata.CreationTimestamp.Equal(m.CreationTimestamp) {
		t.Fatalf("Get = %+v, want %+v", got, *in)
	}

	if _, err := s.Create(ctx, instance("p", "web", nil), CreateOptions{}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Create: %v, want ErrAlreadyExists", err)
	}
	// The same name in another project is another object.
	if _, err := s.Create(ctx, instance("q", "web", nil), CreateOptions{}); err != nil {
		t.Fatalf("Create in other project: %v", err)
	}
	if err := s.Get(ctx, api.InstanceKind, "p", "nope", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}

	// Cluster kinds ignore the project.
	h := &api.Host{Metadata: api.ObjectMeta{Name: "h1", Project: "ignored"}}
	if _, err := s.Create(ctx, h, CreateOptions{}); err != nil {
		t.Fatalf("Create host: %v", err)
	}
	var gh api.Host
	if err := s.Get(ctx, api.HostKind, "whatever", "h1", &gh); err != nil || gh.Metadata.UID != h.Metadata.UID {
		t.Fatalf("Get host = %+v, %v", gh, err)
	}

	for _, bad := range []*api.Instance{instance("", "x", nil), instance("p", "", nil), instance("p", "a/b", nil), instance("p/q", "x", nil)} {
		if _, err := s.Create(ctx, bad, CreateOptions{}); err == nil {
			t.Errorf("Create(%q/%q) succeeded", bad.Metadata.Project, bad.Metadata.Name)
		}
	}
}

func TestUpdate(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	orig := instance("p", "web", nil)
	if _, err := s.Create(ctx, orig, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	firstRV := orig.Metadata.ResourceVersion

	upd := *orig
	upd.Metadata.UID = "forged"
	upd.Metadata.CreationTimestamp = time.Time{}
	upd.Metadata.Generation = 2
	upd.Spec.Image = "alpine"
	if err := s.Update(ctx, &upd); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if upd.Metadata.ResourceVersion == firstRV {
		t.Fatal("Update kept the old resourceVersion")
	}
	var got api.Instance
	if err := s.Get(ctx, api.InstanceKind, "p", "web", &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata.UID != orig.Metadata.UID || !got.Metadata.CreationTimestamp.Equal(orig.Metadata.CreationTimestamp) ||
		got.Metadata.Generation != 2 || got.Spec.Image != "alpine" || got.Metadata.ResourceVersion != upd.Metadata.ResourceVersion {
		t.Fatalf("after Update got %+v", got)
	}

	tests := []struct {
		name    string
		obj     *api.Instance
		wantErr error // nil: any error that is neither conflict nor not-found
	}{
		{"stale version", func() *api.Instance { o := *orig; o.Metadata.ResourceVersion = firstRV; return &o }(), ErrConflict},
		{"garbage version", func() *api.Instance { o := *orig; o.Metadata.ResourceVersion = "x"; return &o }(), ErrConflict},
		{"missing", func() *api.Instance { o := instance("p", "gone", nil); o.Metadata.ResourceVersion = "5"; return o }(), ErrNotFound},
		{"no version", instance("p", "web", nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(ctx, tt.obj)
			if err == nil {
				t.Fatal("Update succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && (errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound)) {
				t.Fatalf("Update: %v, want a plain error", err)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	obj := instance("p", "web", nil)
	if _, err := s.Create(ctx, obj, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "web", "1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Delete with stale version: %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "web", obj.Metadata.ResourceVersion); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "web", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete again: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "web", obj.Metadata.ResourceVersion); !errors.Is(err, ErrNotFound) {
		t.Fatalf("conditional Delete of missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Create(ctx, instance("p", "db", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "db", ""); err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
}

func TestIdempotentCreate(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	opts := CreateOptions{IdempotencyKey: "token-1", RequestHash: "h1"}

	first := instance("p", "web", nil)
	if existed, err := s.Create(ctx, first, opts); err != nil || existed {
		t.Fatalf("first Create = %v, %v", existed, err)
	}
	retry := instance("p", "web", nil)
	existed, err := s.Create(ctx, retry, opts)
	if err != nil || !existed {
		t.Fatalf("retry = %v, %v; want existed", existed, err)
	}
	if retry.Metadata.UID != first.Metadata.UID || retry.Metadata.ResourceVersion != first.Metadata.ResourceVersion {
		t.Fatalf("retry returned %+v, want %+v", retry.Metadata, first.Metadata)
	}

	other := CreateOptions{IdempotencyKey: "token-1", RequestHash: "h2"}
	if _, err := s.Create(ctx, instance("p", "web2", nil), other); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("reuse with another hash: %v, want ErrIdempotencyMismatch", err)
	}
	// The key is per project: another project may use the same token.
	if existed, err := s.Create(ctx, instance("q", "web", nil), opts); err != nil || existed {
		t.Fatalf("same token in another project = %v, %v", existed, err)
	}
	// Without the key, a second create of the name is a plain conflict.
	if _, err := s.Create(ctx, instance("p", "web", nil), CreateOptions{}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("create without key: %v, want ErrAlreadyExists", err)
	}

	if err := s.Delete(ctx, api.InstanceKind, "p", "web", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, instance("p", "web", nil), opts); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry after delete: %v, want ErrNotFound", err)
	}
	// Recreated under the same name by another request: still not the
	// object this key made.
	if _, err := s.Create(ctx, instance("p", "web", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, instance("p", "web", nil), opts); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry after recreate: %v, want ErrNotFound", err)
	}
}

func TestIdempotentCreateConcurrent(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	const n = 20
	opts := CreateOptions{IdempotencyKey: "same", RequestHash: "h"}
	var wg sync.WaitGroup
	uids := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj := instance("p", "web", nil)
			existed, err := s.Create(ctx, obj, opts)
			uids[i], created[i], errs[i] = obj.Metadata.UID, !existed, err
		}()
	}
	wg.Wait()
	made := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if created[i] {
			made++
		}
		if uids[i] != uids[0] {
			t.Fatalf("create %d returned uid %s, create 0 %s", i, uids[i], uids[0])
		}
	}
	if made != 1 {
		t.Fatalf("%d creates made an object, want 1", made)
	}
	items, _, err := s.List(ctx, api.InstanceKind, "p", ListOptions{})
	if err != nil || len(items) != 1 {
		t.Fatalf("List = %d items, %v; want 1", len(items), err)
	}
}

// testGuard is a Guard on a key written by the test.
type testGuard struct {
	key string
	rev int64
}

func (g testGuard) Key() string     { return g.key }
func (g testGuard) Revision() int64 { return g.rev }

func TestGuard(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	put, err := cli.Put(ctx, "/test/leader", "me")
	if err != nil {
		t.Fatal(err)
	}
	good := s.WithGuard(testGuard{"/test/leader", put.Header.Revision})
	bad := s.WithGuard(testGuard{"/test/leader", put.Header.Revision - 1})

	obj := instance("p", "web", nil)
	if _, err := good.Create(ctx, obj, CreateOptions{}); err != nil {
		t.Fatalf("guarded Create: %v", err)
	}
	if err := good.Update(ctx, obj); err != nil {
		t.Fatalf("guarded Update: %v", err)
	}
	// A version conflict under a holding guard is a conflict, not a guard failure.
	stale := *obj
	stale.Metadata.ResourceVersion = "1"
	if err := good.Update(ctx, &stale); !errors.Is(err, ErrConflict) || errors.Is(err, ErrGuardFailed) {
		t.Fatalf("stale guarded Update: %v, want ErrConflict only", err)
	}
	if _, err := good.Create(ctx, instance("p", "web", nil), CreateOptions{}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate guarded Create: %v, want ErrAlreadyExists", err)
	}

	writes := map[string]func(Interface) error{
		"create": func(st Interface) error {
			_, err := st.Create(ctx, instance("p", "other", nil), CreateOptions{IdempotencyKey: "k", RequestHash: "h"})
			return err
		},
		"update": func(st Interface) error { o := *obj; return st.Update(ctx, &o) },
		"delete": func(st Interface) error {
			return st.Delete(ctx, api.InstanceKind, "p", "web", obj.Metadata.ResourceVersion)
		},
	}
	check := func(name string, st Interface) {
		t.Helper()
		for op, write := range writes {
			if err := write(st); !errors.Is(err, ErrGuardFailed) {
				t.Errorf("%s %s: %v, want ErrGuardFailed", name, op, err)
			}
		}
	}
	check("wrong revision", bad)
	check("nested", good.WithGuard(testGuard{"/test/missing", 7}))

	// The leader key is deleted and made again: the old guard no longer holds.
	if _, err := cli.Delete(ctx, "/test/leader"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/test/leader", "someone else"); err != nil {
		t.Fatal(err)
	}
	check("deposed", good)
	if err := s.Get(ctx, api.InstanceKind, "p", "other", &api.Instance{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused create left an object: %v", err)
	}
	// The unguarded store still writes.
	if err := s.Update(ctx, obj); err != nil {
		t.Fatalf("unguarded Update: %v", err)
	}
}

func TestTTLObjectsShareLeasesAndExpire(t *testing.T) {
	s, cli := newTestStore(t)
	s.leases.bucket = time.Second
	ctx := testCtx(t)
	const n = 10
	for i := range n {
		ev := &api.Event{Metadata: api.ObjectMeta{Name: "e" + strconv.Itoa(i), Project: "p"}, Reason: "Test"}
		if _, err := s.Create(ctx, ev, CreateOptions{TTL: 900 * time.Millisecond}); err != nil {
			t.Fatalf("Create event: %v", err)
		}
	}
	keep := instance("p", "keep", nil)
	if _, err := s.Create(ctx, keep, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, kindPrefix(api.EventKind, "p"), clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != n {
		t.Fatalf("got %d events, %v", len(resp.Kvs), err)
	}
	leases := map[int64]bool{}
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			t.Fatalf("event %s has no lease", kv.Key)
		}
		leases[kv.Lease] = true
	}
	// Creates straddling a bucket boundary may use two leases, never one each.
	if len(leases) > 2 {
		t.Fatalf("%d events used %d leases", n, len(leases))
	}
	// An update keeps the lease.
	var ev api.Event
	if err := s.Get(ctx, api.EventKind, "p", "e0", &ev); err != nil {
		t.Fatal(err)
	}
	ev.Message = "updated"
	if err := s.Update(ctx, &ev); err != nil {
		t.Fatalf("Update event: %v", err)
	}
	wait.For(t, 20*time.Second, "events to expire", func() bool {
		items, _, err := s.List(ctx, api.EventKind, "p", ListOptions{})
		return err == nil && len(items) == 0
	})
	if err := s.Get(ctx, api.InstanceKind, "p", "keep", &api.Instance{}); err != nil {
		t.Fatalf("object without TTL: %v", err)
	}
	// After the leases expired, new TTL objects get a fresh one.
	s.leases.now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := s.Create(ctx, &api.Event{Metadata: api.ObjectMeta{Name: "late", Project: "p"}}, CreateOptions{TTL: time.Second}); err != nil {
		t.Fatalf("Create after expiry: %v", err)
	}
	resp, err = cli.Get(ctx, objectKey(api.EventKind, "p", "late"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get late event: %v", err)
	}
	if leases[resp.Kvs[0].Lease] {
		t.Fatalf("late event reused expired lease %x", resp.Kvs[0].Lease)
	}
}

func TestTTLLeaseGoneRetries(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	if _, err := s.Create(ctx, &api.Event{Metadata: api.ObjectMeta{Name: "a", Project: "p"}}, CreateOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Someone revokes the shared lease (as an etcd restore might lose it).
	for _, l := range s.leases.leases {
		if _, err := cli.Revoke(ctx, l.id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, &api.Event{Metadata: api.ObjectMeta{Name: "b", Project: "p"}}, CreateOptions{TTL: time.Hour}); err != nil {
		t.Fatalf("Create with a revoked cached lease: %v", err)
	}
	if err := s.Get(ctx, api.EventKind, "p", "b", &api.Event{}); err != nil {
		t.Fatal(err)
	}
}

// names returns "project/name" of objs.
func names(objs []api.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = fmt.Sprintf("%s/%s", o.Meta().Project, o.Meta().Name)
	}
	return out
}

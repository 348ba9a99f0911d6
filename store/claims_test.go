package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestClaimsCreateDelete(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)

	a := instance("p", "a", nil)
	if _, err := s.Create(ctx, a, CreateOptions{Claims: []string{"ip/net1/10.0.0.2", "ip/net2/10.1.0.2"}}); err != nil {
		t.Fatalf("Create with claims: %v", err)
	}
	got, err := s.ListClaims(ctx, "ip/net1/")
	if err != nil || len(got) != 1 || got["ip/net1/10.0.0.2"] != objectKey(api.InstanceKind, "p", "a") {
		t.Fatalf("ListClaims = %v, %v", got, err)
	}

	// A second object asking for a held claim fails, names the claim and
	// holder, and leaves nothing behind.
	b := instance("p", "b", nil)
	_, err = s.Create(ctx, b, CreateOptions{Claims: []string{"ip/net1/10.0.0.3", "ip/net2/10.1.0.2"}})
	var ce *ClaimError
	if !errors.Is(err, ErrClaimTaken) || !errors.As(err, &ce) || ce.Claim != "ip/net2/10.1.0.2" || ce.HolderName() != "a" {
		t.Fatalf("Create with taken claim: %v (%+v)", err, ce)
	}
	if err := s.Get(ctx, api.InstanceKind, "p", "b", &api.Instance{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("object of failed create: %v", err)
	}
	if got, _ := s.ListClaims(ctx, "ip/"); len(got) != 2 {
		t.Fatalf("claims after failed create: %v", got)
	}

	// An existing name wins over a taken claim: the caller learns the
	// object exists.
	if _, err := s.Create(ctx, instance("p", "a", nil), CreateOptions{Claims: []string{"ip/net1/10.0.0.2"}}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("Create of existing name: %v, want ErrAlreadyExists", err)
	}

	// Updates keep claims; delete releases them in the same txn.
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "p", "a", ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got, _ := s.ListClaims(ctx, ""); len(got) != 0 {
		t.Fatalf("claims after delete: %v", got)
	}
	resp, err := cli.Get(ctx, claimsOfRoot, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("claims lists after delete: %d, %v", len(resp.Kvs), err)
	}
	if _, err := s.Create(ctx, b, CreateOptions{Claims: []string{"ip/net2/10.1.0.2"}}); err != nil {
		t.Fatalf("Create after release: %v", err)
	}

	for _, bad := range [][]string{{""}, {"/abs"}, {"a//b"}, {"a/../b"}, {"x", "x"}, {"trailing/"}} {
		if _, err := s.Create(ctx, instance("p", "bad", nil), CreateOptions{Claims: bad}); err == nil || errors.Is(err, ErrClaimTaken) {
			t.Errorf("Create with claims %q: %v, want a plain error", bad, err)
		}
	}
	if _, err := s.Create(ctx, instance("p", "ttl", nil), CreateOptions{Claims: []string{"c"}, TTL: 60e9}); err == nil {
		t.Error("claims with a TTL accepted")
	}
}

func TestClaimsConcurrentOneWinner(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	const n = 8
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		wins, refused int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(ctx, instance("p", fmt.Sprintf("i%d", i), nil), CreateOptions{Claims: []string{"vni/4096"}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrClaimTaken):
				refused++
			default:
				t.Errorf("create %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || refused != n-1 {
		t.Fatalf("%d won and %d were refused, want 1 and %d", wins, refused, n-1)
	}
	objs, _, err := s.List(ctx, api.InstanceKind, "p", ListOptions{})
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects: %d, %v", len(objs), err)
	}
}

func TestUpdateClaims(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	fip := &api.FloatingIP{Metadata: api.ObjectMeta{Project: "p", Name: "f1"}}
	if _, err := s.Create(ctx, fip, CreateOptions{Claims: []string{"fip/pool/192.0.2.10"}}); err != nil {
		t.Fatal(err)
	}
	other := &api.FloatingIP{Metadata: api.ObjectMeta{Project: "p", Name: "f2"}}
	if _, err := s.Create(ctx, other, CreateOptions{Claims: []string{"fip/pool/192.0.2.11", "fipinstance/p/web"}}); err != nil {
		t.Fatal(err)
	}

	fip.Spec.Instance = "web"
	err := s.UpdateClaims(ctx, fip, []string{"fipinstance/p/web"}, nil)
	var ce *ClaimError
	if !errors.As(err, &ce) || ce.HolderName() != "f2" {
		t.Fatalf("UpdateClaims of a taken claim: %v", err)
	}
	var stored api.FloatingIP
	if err := s.Get(ctx, api.FloatingIPKind, "p", "f1", &stored); err != nil || stored.Spec.Instance != "" {
		t.Fatalf("failed UpdateClaims changed the object: %+v, %v", stored.Spec, err)
	}

	// f2 lets go, f1 takes it; the address claims stay.
	other.Spec.Instance = ""
	if err := s.UpdateClaims(ctx, other, nil, []string{"fipinstance/p/web"}); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := s.UpdateClaims(ctx, fip, []string{"fipinstance/p/web"}, nil); err != nil {
		t.Fatalf("take: %v", err)
	}
	// Taking a claim already held is a no-op for the claim.
	if err := s.UpdateClaims(ctx, fip, []string{"fipinstance/p/web"}, nil); err != nil {
		t.Fatalf("take again: %v", err)
	}
	got, _ := s.ListClaims(ctx, "")
	want := map[string]string{
		"fip/pool/192.0.2.10": objectKey(api.FloatingIPKind, "p", "f1"),
		"fip/pool/192.0.2.11": objectKey(api.FloatingIPKind, "p", "f2"),
		"fipinstance/p/web":   objectKey(api.FloatingIPKind, "p", "f1"),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claims = %v, want %v", got, want)
	}
	stale := *fip
	stale.Metadata.ResourceVersion = "1"
	if err := s.UpdateClaims(ctx, &stale, nil, nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale UpdateClaims: %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, api.FloatingIPKind, "p", "f1", fip.Metadata.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListClaims(ctx, ""); len(got) != 1 || got["fip/pool/192.0.2.11"] == "" {
		t.Fatalf("claims after delete = %v", got)
	}
}

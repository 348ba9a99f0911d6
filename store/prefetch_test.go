package store

import (
	"errors"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestPrefetch reads a present, an absent and an invalid object at once:
// under the returned context Get answers the first two from that read
// (even after the store changed) and the third as before; under the
// caller's context Get reads etcd.
func TestPrefetch(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	web := instance("p", "web", nil)
	web.Spec.Image = "debian"
	if _, err := s.Create(ctx, web, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fl := &api.Flavor{Metadata: api.ObjectMeta{Name: "tiny"}, Spec: api.Resources{VCPUs: 1}}
	pctx := Prefetch(ctx, s, []Ref{
		{Kind: api.InstanceKind, Project: "p", Name: "web"},
		{Kind: api.InstanceKind, Project: "p", Name: "web"}, // twice: read once
		{Kind: api.InstanceKind, Project: "p", Name: "db"},
		{Kind: api.FlavorKind, Project: "ignored", Name: "tiny"},
		{Kind: api.InstanceKind, Project: "p", Name: "Not/Valid"},
	})
	// The store changes after the read.
	changed := *web
	changed.Spec.Image = "alpine"
	if err := s.Update(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, fl, CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		prefetch  bool
		kind      *api.Kind
		obj       string
		wantImage string // for the instance
		wantErr   error
		wantAnErr bool
	}{
		{"prefetched, present", true, api.InstanceKind, "web", "debian", nil, false},
		{"prefetched, absent", true, api.FlavorKind, "tiny", "", ErrNotFound, true},
		{"not prefetched", true, api.InstanceKind, "cache", "", ErrNotFound, true},
		{"invalid name", true, api.InstanceKind, "Not/Valid", "", nil, true},
		{"caller's context", false, api.InstanceKind, "web", "alpine", nil, false},
		{"caller's context, flavor", false, api.FlavorKind, "tiny", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ctx
			if tt.prefetch {
				c = pctx
			}
			out := tt.kind.New()
			err := s.Get(c, tt.kind, "p", tt.obj, out)
			switch {
			case tt.wantAnErr && err == nil:
				t.Fatalf("Get = nil, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Get = %v, want %v", err, tt.wantErr)
			case !tt.wantAnErr && err != nil:
				t.Fatalf("Get = %v", err)
			}
			if in, ok := out.(*api.Instance); ok && err == nil && in.Spec.Image != tt.wantImage {
				t.Errorf("image %q, want %q", in.Spec.Image, tt.wantImage)
			}
		})
	}
	if got := Prefetch(ctx, s, nil); got != ctx {
		t.Error("Prefetch of nothing made a new context")
	}
}

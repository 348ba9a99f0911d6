package store

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestCreateBatch creates events in one transaction, then a batch with one
// name already taken: that one fails with ErrAlreadyExists, the others are
// created; every created object can be read back with its resourceVersion.
func TestCreateBatch(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	events := func(names ...string) []api.Object {
		objs := make([]api.Object, len(names))
		for i, n := range names {
			objs[i] = &api.Event{Metadata: api.ObjectMeta{Name: n, Project: "p"}, Reason: "R" + n}
		}
		return objs
	}
	tests := []struct {
		name  string
		names []string
		taken string // the one expected to fail
	}{
		{"all new", []string{"e1", "e2", "e3"}, ""},
		{"one taken", []string{"e4", "e2", "e5"}, "e2"},
		{"one alone", []string{"e6"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := cli.Get(ctx, "/")
			if err != nil {
				t.Fatal(err)
			}
			objs := events(tt.names...)
			errs := CreateBatch(ctx, s, objs, time.Hour)
			for i, obj := range objs {
				name := tt.names[i]
				if name == tt.taken {
					if !errors.Is(errs[i], ErrAlreadyExists) {
						t.Errorf("%s: %v, want ErrAlreadyExists", name, errs[i])
					}
					continue
				}
				if errs[i] != nil {
					t.Fatalf("%s: %v", name, errs[i])
				}
				var got api.Event
				if err := s.Get(ctx, api.EventKind, "p", name, &got); err != nil {
					t.Fatal(err)
				}
				if got.Reason != "R"+name || got.Metadata.UID == "" || got.Metadata.ResourceVersion != obj.Meta().ResourceVersion {
					t.Errorf("%s read back as %+v", name, got)
				}
				if rv, _ := strconv.ParseInt(got.Metadata.ResourceVersion, 10, 64); rv <= before.Header.Revision {
					t.Errorf("%s at revision %d, not after %d", name, rv, before.Header.Revision)
				}
				resp, err := cli.Get(ctx, objectKey(api.EventKind, "p", name))
				if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
					t.Errorf("%s: stored without a lease: %v %v", name, resp, err)
				}
			}
		})
	}
}

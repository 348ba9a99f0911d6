package store

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestWatchProgress: a progress watch delivers the changes of its kind,
// and after RequestProgress a bookmark at or past every write made
// before, even writes of other kinds; a plain watch gets no bookmark.
func TestWatchProgress(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	if _, err := s.Create(ctx, instance("p", "a", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := s.WatchProgress(ctx, api.InstanceKind, start)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Watch(ctx, api.InstanceKind, "", start)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, instance("p", "b", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, prog, api.Added, "p", "b")
	expect(t, plain, api.Added, "p", "b")
	// A write of another kind moves the revision past the instances'.
	net := &api.Network{Metadata: api.ObjectMeta{Name: "n", Project: "p"}, Spec: api.NetworkSpec{CIDR: "10.0.0.0/24"}}
	if _, err := s.Create(ctx, net, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want <= start+1 {
		t.Fatalf("revision %d after two writes from %d", want, start)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.RequestProgress(ctx, api.InstanceKind); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-prog:
			if ev.Type != api.Bookmark || ev.Object != nil || ev.Err != nil {
				t.Fatalf("event %+v, want a bookmark", ev)
			}
			if ev.Revision < want {
				t.Fatalf("bookmark at %d, want at least %d", ev.Revision, want)
			}
			select {
			case ev := <-plain:
				t.Fatalf("plain watch got %+v", ev)
			default:
			}
			return
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no bookmark within 10s")
			}
		}
	}
}

package store

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// next returns the next event or fails after a deadline.
func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return Event{}
}

func expect(t *testing.T, ch <-chan Event, typ api.EventType, project, name string) Event {
	t.Helper()
	ev := next(t, ch)
	if ev.Err != nil {
		t.Fatalf("watch error: %v", ev.Err)
	}
	m := ev.Object.Meta()
	if ev.Type != typ || m.Project != project || m.Name != name {
		t.Fatalf("event %s %s/%s, want %s %s/%s", ev.Type, m.Project, m.Name, typ, project, name)
	}
	if m.ResourceVersion != strconv.FormatInt(ev.Revision, 10) {
		t.Fatalf("event object version %s, event revision %d", m.ResourceVersion, ev.Revision)
	}
	return ev
}

func TestWatch(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := testCtx(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	one, err := s.Watch(wctx, api.InstanceKind, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Watch(wctx, api.InstanceKind, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := s.Watch(wctx, api.HostKind, "", 0)
	if err != nil {
		t.Fatal(err)
	}

	// Project "ab" shares a prefix with "a" and must not leak into it.
	if _, err := s.Create(ctx, instance("ab", "x", nil), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obj := instance("a", "web", nil)
	if _, err := s.Create(ctx, obj, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obj.Spec.Image = "alpine"
	if err := s.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, api.InstanceKind, "a", "web", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, &api.Host{Metadata: api.ObjectMeta{Name: "h1"}}, CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	added := expect(t, one, api.Added, "a", "web")
	mod := expect(t, one, api.Modified, "a", "web")
	if mod.Object.(*api.Instance).Spec.Image != "alpine" {
		t.Fatalf("MODIFIED object %+v", mod.Object)
	}
	del := expect(t, one, api.Deleted, "a", "web")
	if del.Object.(*api.Instance).Spec.Image != "alpine" || del.Object.Meta().UID != obj.Metadata.UID {
		t.Fatalf("DELETED carries %+v, want the last state", del.Object)
	}

	expect(t, all, api.Added, "ab", "x")
	expect(t, all, api.Added, "a", "web")
	expect(t, all, api.Modified, "a", "web")
	expect(t, all, api.Deleted, "a", "web")
	expect(t, hosts, api.Added, "", "h1")

	// Resuming from a revision replays what came after it.
	replay, err := s.Watch(wctx, api.InstanceKind, "a", added.Revision)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, replay, api.Modified, "a", "web")
	expect(t, replay, api.Deleted, "a", "web")

	// The channel closes when ctx ends.
	cancel()
	for _, ch := range []<-chan Event{one, all, hosts, replay} {
		deadline := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("watch channel still open after cancel")
			}
		}
	}
}

func TestWatchCompacted(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	first := instance("a", "one", nil)
	if _, err := s.Create(ctx, first, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	second := instance("a", "two", nil)
	if _, err := s.Create(ctx, second, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rev, _ := strconv.ParseInt(second.Metadata.ResourceVersion, 10, 64)
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	from, _ := strconv.ParseInt(first.Metadata.ResourceVersion, 10, 64)
	ch, err := s.Watch(ctx, api.InstanceKind, "a", from-1)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch)
	if !errors.Is(ev.Err, ErrCompacted) {
		t.Fatalf("event %+v, want ErrCompacted", ev)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after ErrCompacted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after ErrCompacted")
	}
}

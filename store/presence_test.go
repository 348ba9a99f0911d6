package store

import (
	"testing"
	"time"
)

func nextPresence(t *testing.T, ch <-chan PresenceEvent, within time.Duration) PresenceEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("presence watch closed")
		}
		if ev.Err != nil {
			t.Fatalf("presence watch error: %v", ev.Err)
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no presence event within %s", within)
	}
	return PresenceEvent{}
}

func TestPresence(t *testing.T) {
	s, cli := newTestStore(t)
	other := NewEtcd(cli).Presence() // a second server sharing the etcd
	p := s.Presence()
	ctx := testCtx(t)

	_, rev, err := p.Alive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := p.Watch(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}

	if err := p.Renew(ctx, "h1", 2*time.Second); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if ev := nextPresence(t, events, 10*time.Second); ev.Name != "h1" || !ev.Alive {
		t.Fatalf("event %+v, want h1 alive", ev)
	}
	lease := func() int64 {
		resp, err := cli.Get(ctx, presenceKey("h1"))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("presence key: %v", err)
		}
		return resp.Kvs[0].Lease
	}
	first := lease()
	// Renewals from either server keep the same key and lease alive.
	for _, r := range []Presence{other, p, other} {
		if err := r.Renew(ctx, "h1", 2*time.Second); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
	if got := lease(); got != first {
		t.Fatalf("renewal changed lease %x to %x", first, got)
	}
	alive, _, err := other.Alive(ctx)
	if err != nil || !alive["h1"] || len(alive) != 1 {
		t.Fatalf("Alive = %v, %v", alive, err)
	}

	// Without renewals the name expires.
	if ev := nextPresence(t, events, 15*time.Second); ev.Name != "h1" || ev.Alive {
		t.Fatalf("event %+v, want h1 expired", ev)
	}
	alive, _, err = p.Alive(ctx)
	if err != nil || alive["h1"] {
		t.Fatalf("Alive after expiry = %v, %v", alive, err)
	}

	// Renew brings it back with a new lease; Remove ends it at once.
	if err := other.Renew(ctx, "h1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, events, 10*time.Second); !ev.Alive {
		t.Fatalf("event %+v, want alive", ev)
	}
	if err := p.Remove(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, events, 10*time.Second); ev.Name != "h1" || ev.Alive {
		t.Fatalf("event %+v, want h1 removed", ev)
	}
	if err := p.Remove(ctx, "h1"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := p.Renew(ctx, "", time.Second); err == nil {
		t.Fatal("Renew of an empty name succeeded")
	}
}

func TestPresenceKeyWithoutLease(t *testing.T) {
	s, cli := newTestStore(t)
	ctx := testCtx(t)
	if _, err := cli.Put(ctx, presenceKey("h2"), "legacy"); err != nil {
		t.Fatal(err)
	}
	if err := s.Presence().Renew(ctx, "h2", time.Minute); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, presenceKey("h2"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("key after Renew: %v, %v", resp, err)
	}
}

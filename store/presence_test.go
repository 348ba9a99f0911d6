package store

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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

// leaseLeft returns the seconds left on the lease of name's presence key.
func leaseLeft(t *testing.T, s *etcdStore, name string) int64 {
	t.Helper()
	ctx := testCtx(t)
	resp, err := s.cli.Get(ctx, presenceKey(name))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("presence key of %s: %v (%d keys)", name, err, len(resp.Kvs))
	}
	ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	return ttl.TTL
}

func TestPresenceSuspect(t *testing.T) {
	s, _ := newTestStore(t)
	p := s.Presence()
	ctx := testCtx(t)
	if err := p.Suspect(ctx, "nobody", 2*time.Second); err != nil {
		t.Fatalf("Suspect of a name not alive: %v", err)
	}
	if err := p.Renew(ctx, "h1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Suspect(ctx, "h1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if left := leaseLeft(t, s, "h1"); left > 2 {
		t.Fatalf("suspected h1 has %d s left, want at most 2", left)
	}
	// A renewal gives the full TTL back.
	if err := p.Renew(ctx, "h1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if left := leaseLeft(t, s, "h1"); left < 50 {
		t.Fatalf("renewed h1 has %d s left, want its minute back", left)
	}
	// Not renewed, a suspected name expires within its short TTL.
	_, rev, err := p.Alive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := p.Watch(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Suspect(ctx, "h1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for {
		ev := nextPresence(t, events, 10*time.Second)
		if ev.Name == "h1" && !ev.Alive {
			break
		}
	}
}

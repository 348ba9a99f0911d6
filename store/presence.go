package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdPresence implements Presence with one leased key per name. The lease
// lives in etcd, not in this process, so any server can renew any name.
type etcdPresence struct {
	cli *clientv3.Client
}

// presenceKey is the key of name.
func presenceKey(name string) string { return presencePrefix + name }

// Renew implements Presence: it refreshes the lease of name's key, or
// makes a new leased key when there is none or its lease is gone.
func (p *etcdPresence) Renew(ctx context.Context, name string, ttl time.Duration) error {
	if name == "" || !validSegment(name) {
		return fmt.Errorf("store: presence: invalid name %q", name)
	}
	if ttl <= 0 {
		return fmt.Errorf("store: presence %q: ttl must be positive", name)
	}
	key := presenceKey(name)
	// Another server may create the key between our read and write; then
	// the second round finds it and keeps it alive.
	for range 3 {
		resp, err := p.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("store: presence %q: %w", name, err)
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			if kv.Lease != 0 {
				ka, err := p.cli.KeepAliveOnce(ctx, clientv3.LeaseID(kv.Lease))
				if err == nil && ka.TTL >= secondsOf(ttl) {
					return nil
				}
				// A lease shorter than asked for (Suspect shortened it)
				// is replaced below by one of the full TTL.
				if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
					return fmt.Errorf("store: presence %q: keep alive: %w", name, err)
				}
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
		}
		done, err := p.create(ctx, key, ttl, cmp)
		if err != nil || done {
			if err != nil {
				err = fmt.Errorf("store: presence %q: %w", name, err)
			}
			return err
		}
	}
	return fmt.Errorf("store: presence %q: key changed under three renewals in a row: %w", name, ErrConflict)
}

// create puts key with a new lease of ttl if cmp holds. When it does not,
// the lease is revoked and done is false.
func (p *etcdPresence) create(ctx context.Context, key string, ttl time.Duration, cmp clientv3.Cmp) (done bool, err error) {
	lease, err := p.cli.Grant(ctx, secondsOf(ttl))
	if err != nil {
		return false, fmt.Errorf("grant lease: %w", err)
	}
	resp, err := p.cli.Txn(ctx).If(cmp).
		Then(clientv3.OpPut(key, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID))).
		Commit()
	if err == nil && resp.Succeeded {
		return true, nil
	}
	if _, rerr := p.cli.Revoke(context.WithoutCancel(ctx), lease.ID); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
		err = errors.Join(err, fmt.Errorf("revoke unused lease: %w", rerr))
	}
	if err != nil {
		return false, fmt.Errorf("put: %w", err)
	}
	return false, nil
}

// secondsOf rounds ttl up to whole seconds, as etcd's leases count.
func secondsOf(ttl time.Duration) int64 { return int64((ttl + time.Second - 1) / time.Second) }

// Suspect implements Presence: it moves name's key to a new lease of ttl
// when its own lease is longer, and revokes the old one.
func (p *etcdPresence) Suspect(ctx context.Context, name string, ttl time.Duration) error {
	if name == "" || !validSegment(name) {
		return fmt.Errorf("store: presence: invalid name %q", name)
	}
	key := presenceKey(name)
	resp, err := p.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("store: presence %q: suspect: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil // gone already
	}
	kv := resp.Kvs[0]
	if kv.Lease != 0 {
		left, err := p.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil {
			return fmt.Errorf("store: presence %q: suspect: %w", name, err)
		}
		if left.TTL >= 0 && left.TTL <= secondsOf(ttl) {
			return nil // expires as soon already
		}
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
	done, err := p.create(ctx, key, ttl, cmp)
	if err != nil {
		return fmt.Errorf("store: presence %q: suspect: %w", name, err)
	}
	if done && kv.Lease != 0 {
		if _, err := p.cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("store: presence %q: suspect: revoke the old lease: %w", name, err)
		}
	}
	return nil
}

// Alive implements Presence.
func (p *etcdPresence) Alive(ctx context.Context) (map[string]bool, int64, error) {
	resp, err := p.cli.Get(ctx, presencePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("store: presence: list: %w", err)
	}
	alive := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		alive[strings.TrimPrefix(string(kv.Key), presencePrefix)] = true
	}
	return alive, resp.Header.Revision, nil
}

// Watch implements Presence.
func (p *etcdPresence) Watch(ctx context.Context, fromRev int64) (<-chan PresenceEvent, error) {
	if fromRev < 0 {
		return nil, fmt.Errorf("store: presence: watch from negative revision %d", fromRev)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev+1))
	}
	wch := p.cli.Watch(wctx, presencePrefix, opts...)
	out := make(chan PresenceEvent, watchBuffer)
	go func() {
		defer close(out)
		defer cancel()
		send := func(ev PresenceEvent) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(PresenceEvent{Err: fmt.Errorf("store: presence: watch from %d, compacted at %d: %w", fromRev, resp.CompactRevision, ErrCompacted)})
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					send(PresenceEvent{Err: fmt.Errorf("store: presence: watch: %w", err)})
				}
				return
			}
			for _, e := range resp.Events {
				ev := PresenceEvent{
					Name:     strings.TrimPrefix(string(e.Kv.Key), presencePrefix),
					Alive:    e.Type == mvccpb.PUT,
					Revision: e.Kv.ModRevision,
				}
				if !send(ev) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(PresenceEvent{Err: fmt.Errorf("store: presence: watch ended: %w", clientCtxErr(p.cli))})
		}
	}()
	return out, nil
}

// Remove implements Presence. The key's lease is revoked too: it holds
// nothing else.
func (p *etcdPresence) Remove(ctx context.Context, name string) error {
	if name == "" || !validSegment(name) {
		return fmt.Errorf("store: presence: invalid name %q", name)
	}
	resp, err := p.cli.Delete(ctx, presenceKey(name), clientv3.WithPrevKV())
	if err != nil {
		return fmt.Errorf("store: presence %q: remove: %w", name, err)
	}
	for _, kv := range resp.PrevKvs {
		if kv.Lease == 0 {
			continue
		}
		if _, err := p.cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("store: presence %q: revoke lease: %w", name, err)
		}
	}
	return nil
}

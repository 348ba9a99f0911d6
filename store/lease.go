package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseCache shares etcd leases between objects with similar TTLs, so that
// a thousand events do not grant a thousand leases.
//
// A TTL is rounded up to a whole bucket (a minute). The lease of a bucket
// is granted for TTL plus one bucket and handed out only during its first
// bucket of life, so every object attached to it lives at least its TTL
// and at most one bucket longer. After that a new lease is granted; the
// old one expires with its objects.
type leaseCache struct {
	cli    *clientv3.Client
	bucket time.Duration // rounding and reuse window; tests shorten it
	now    func() time.Time

	mu     sync.Mutex
	leases map[time.Duration]cachedLease
}

type cachedLease struct {
	id       clientv3.LeaseID
	useUntil time.Time
}

func newLeaseCache(cli *clientv3.Client) *leaseCache {
	return &leaseCache{cli: cli, bucket: time.Minute, now: time.Now, leases: map[time.Duration]cachedLease{}}
}

// get returns a lease that outlives ttl by at most one bucket.
func (c *leaseCache) get(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	rounded := (ttl + c.bucket - 1) / c.bucket * c.bucket
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if l, ok := c.leases[rounded]; ok && now.Before(l.useUntil) {
		return l.id, nil
	}
	secs := int64((rounded + c.bucket + time.Second - 1) / time.Second)
	resp, err := c.cli.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("grant lease of %ds: %w", secs, err)
	}
	c.leases[rounded] = cachedLease{id: resp.ID, useUntil: now.Add(c.bucket)}
	return resp.ID, nil
}

// forget drops all cached leases, after etcd said one is gone.
func (c *leaseCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.leases)
}

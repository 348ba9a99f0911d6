package election

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Pacing of the leader probe (WithLeaderProbe).
const (
	// probeEvery is how often a waiting candidate probes the leader.
	probeEvery = 100 * time.Millisecond
	// probeTimeout bounds one probe and one read of the leader key.
	probeTimeout = 300 * time.Millisecond
	// probeStrikes is how many probes in a row must find the leader gone
	// before its session is ended.
	probeStrikes = 3
)

// Probe reports whether the candidate named identity, which leads, is
// certainly gone: its process is dead, not merely slow or out of reach
// (a refused connection, not a timeout). It must answer within ctx.
type Probe func(ctx context.Context, identity string) (gone bool)

// Option tunes Run.
type Option func(*options)

type options struct {
	probe Probe
}

// WithLeaderProbe makes a candidate waiting for leadership probe the
// leader every 100 ms. When probe finds it gone three times in a row
// (some 300 ms), the candidate revokes the leader's session lease, which
// deletes its key and lets the next candidate lead at once, instead of
// waiting for the lease to run out (its TTL, plus etcd's election timeout
// when etcd's own leader died too).
//
// This is safe even when probe is wrong: the deposed leader's guarded
// writes fail from the revocation on, and its term ends when its client
// sees the session gone. A probe that is wrong often makes leadership
// move often, hence the requirement that it answer "gone" only on
// certain evidence; a power cut or partition is left to the lease.
func WithLeaderProbe(p Probe) Option { return func(o *options) { o.probe = p } }

// leaderKey is what a waiting candidate knows of the current leader.
type leaderKey struct {
	identity string
	lease    clientv3.LeaseID
}

// fenceGoneLeader probes the leader of pfx until ctx ends, and revokes
// its session lease once probe found it gone probeStrikes times in a
// row. The leader key is read again on every round, but when etcd does
// not answer (it may be electing a leader of its own, the dead server's
// member having led it) the last leader read is probed all the same, so
// that the revocation is ready as soon as etcd is.
func fenceGoneLeader(ctx context.Context, cli *clientv3.Client, pfx, self string, probe Probe, log *slog.Logger) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var cur leaderKey
	strikes := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, probeTimeout)
		resp, err := cli.Get(rctx, pfx+"/", clientv3.WithFirstCreate()...)
		cancel()
		if err == nil {
			next := leaderKey{}
			if len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) != self {
				next = leaderKey{string(resp.Kvs[0].Value), clientv3.LeaseID(resp.Kvs[0].Lease)}
			}
			if next != cur {
				cur, strikes = next, 0
			}
		}
		if cur.lease != 0 {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			gone := probe(pctx, cur.identity)
			cancel()
			if gone {
				strikes++
			} else {
				strikes = 0
			}
		}
		if strikes >= probeStrikes {
			log.Warn("election: the leader's server is gone; ending its session", "leader", cur.identity)
			if _, err := cli.Revoke(ctx, cur.lease); err != nil && ctx.Err() == nil {
				log.Debug("election: revoke the gone leader's session", "leader", cur.identity, "err", err)
			}
			cur, strikes = leaderKey{}, 0
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Package election elects one controller leader among ouro servers with
// etcd's concurrency package, and hands the leader a store.Guard so that
// its writes fail the moment it is no longer leader.
//
//	Run ──► grant lease ──► campaign ──► elected: lead(ctx, guard)
//	 ▲                                        │ session lost, ctx ends
//	 └──── resign, revoke lease ◄─────────────┘ or lead returns
//
// A deposed leader's lead ctx is cancelled as soon as its client sees
// the session expire; writes through the guard are refused by etcd even
// before that, because the guard compares the create revision of the
// leader key.
package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ouroboros-cloud/ouro/store"
)

// DefaultTTL is the session TTL when Run is given zero: a lost leader is
// replaced within about this long.
const DefaultTTL = 2 * time.Second

// keyPrefix is where elections keep their candidate keys.
const keyPrefix = "/ouro/election/"

// ErrNoLeader means no candidate currently leads.
var ErrNoLeader = errors.New("no leader elected")

// guard is the store.Guard of one leadership term.
type guard struct {
	key string
	rev int64
}

func (g guard) Key() string     { return g.key }
func (g guard) Revision() int64 { return g.rev }

var _ store.Guard = guard{}

// prefix returns the election prefix of name.
func prefix(name string) (string, error) {
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("election: invalid name %q", name)
	}
	return keyPrefix + name, nil
}

// Run campaigns in election name as identity until ctx ends. Each time it
// is elected it calls lead with a ctx that is cancelled when leadership
// is lost (or ctx ends) and a guard for store.WithGuard. When lead
// returns, Run resigns and campaigns again. Errors talking to etcd are
// logged and retried with back-off. Run returns nil once ctx ends, or an
// error for invalid arguments.
func Run(ctx context.Context, cli *clientv3.Client, name, identity string, ttl time.Duration,
	lead func(ctx context.Context, guard store.Guard), opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	pfx, err := prefix(name)
	if err != nil {
		return err
	}
	if lead == nil {
		return errors.New("election: nil lead function")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	log := slog.Default().With("election", name, "identity", identity)
	backoff := newBackoff(100*time.Millisecond, ttl)
	for ctx.Err() == nil {
		led, err := term(ctx, cli, pfx, identity, ttl, lead, o, log)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("election: campaign failed, retrying", "err", err)
			backoff.wait(ctx)
		case !led:
			backoff.wait(ctx)
		default:
			// Led and stepped down: give the others a moment to win.
			backoff.reset()
			backoff.wait(ctx)
			backoff.reset()
		}
	}
	return nil
}

// term runs one session: campaign, and lead if elected. led reports
// whether this candidate led.
func term(ctx context.Context, cli *clientv3.Client, pfx, identity string, ttl time.Duration,
	lead func(context.Context, store.Guard), o options, log *slog.Logger) (led bool, err error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	gctx, cancel := context.WithTimeout(ctx, ttl+5*time.Second)
	grant, err := cli.Grant(gctx, secs)
	cancel()
	if err != nil {
		return false, fmt.Errorf("grant session lease: %w", err)
	}
	// The session outlives ctx so that Close can still revoke the lease
	// and hand leadership over at once instead of after the TTL.
	session, err := concurrency.NewSession(cli, concurrency.WithLease(grant.ID),
		concurrency.WithTTL(int(secs)), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		revokeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
		cli.Revoke(revokeCtx, grant.ID)
		cancel()
		return false, fmt.Errorf("start session: %w", err)
	}
	defer func() {
		if cerr := session.Close(); cerr != nil && ctx.Err() == nil {
			log.Debug("election: revoke session lease", "err", cerr)
		}
	}()

	// termCtx ends with ctx or with the session, whichever comes first.
	// The term returns only once the goroutine watching the session has.
	termCtx, endTerm := context.WithCancel(ctx)
	watched := make(chan struct{})
	defer func() { endTerm(); <-watched }()
	go func() {
		defer close(watched)
		select {
		case <-session.Done():
			endTerm()
		case <-termCtx.Done():
		}
	}()

	e := concurrency.NewElection(session, pfx)
	if err := campaign(termCtx, cli, e, pfx, identity, o, log); err != nil {
		if termCtx.Err() != nil {
			return false, nil // ctx ended or session lost while waiting
		}
		return false, fmt.Errorf("campaign: %w", err)
	}
	if termCtx.Err() != nil {
		return false, nil
	}
	g := guard{key: e.Key(), rev: e.Rev()}
	log.Info("election: elected leader", "key", g.key, "revision", g.rev)
	keyWatched := make(chan struct{})
	go func() { defer close(keyWatched); endOnDelete(termCtx, cli, g, endTerm) }()
	defer func() { endTerm(); <-keyWatched }()
	lead(termCtx, g)
	select {
	case <-session.Done():
		log.Warn("election: leadership lost: session expired")
	default:
		log.Info("election: stepping down")
	}
	endTerm()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
	defer cancel()
	if err := e.Resign(rctx); err != nil && ctx.Err() == nil {
		log.Debug("election: resign", "err", err)
	}
	return true, nil
}

// endOnDelete calls end when the leader key of g is deleted, as when
// another candidate revoked this session (WithLeaderProbe), before the
// session's next keep-alive would tell; or when ctx ends.
// A watch that fails (its start compacted away) is made again once a read
// shows the key still there.
func endOnDelete(ctx context.Context, cli *clientv3.Client, g guard, end func()) {
	from := g.rev
	for ctx.Err() == nil {
		for wr := range cli.Watch(ctx, g.key, clientv3.WithRev(from), clientv3.WithFilterPut()) {
			if len(wr.Events) > 0 {
				end()
				return
			}
			if wr.Err() != nil {
				break
			}
		}
		resp, err := cli.Get(ctx, g.key)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// The session's keep-alive tells when etcd is gone for long.
			from = g.rev
			select {
			case <-ctx.Done():
			case <-time.After(probeEvery):
			}
		case len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != g.rev:
			end()
			return
		default:
			from = resp.Header.Revision + 1
		}
	}
}

// campaign waits until this candidate leads, probing the leader
// meanwhile when o has a probe.
func campaign(ctx context.Context, cli *clientv3.Client, e *concurrency.Election, pfx, identity string,
	o options, log *slog.Logger) error {
	if o.probe == nil {
		return e.Campaign(ctx, identity)
	}
	probeCtx, stop := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() { defer close(probed); fenceGoneLeader(probeCtx, cli, pfx, identity, o.probe, log) }()
	err := e.Campaign(ctx, identity)
	stop()
	<-probed
	return err
}

// Leader returns the identity of the current leader of election name, or
// an error wrapping ErrNoLeader.
func Leader(ctx context.Context, cli *clientv3.Client, name string) (string, error) {
	pfx, err := prefix(name)
	if err != nil {
		return "", err
	}
	resp, err := cli.Get(ctx, pfx+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("election %s: read leader: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("election %s: %w", name, ErrNoLeader)
	}
	return string(resp.Kvs[0].Value), nil
}

// backoff waits longer after each failure, up to a maximum.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max, cur: min} }

func (b *backoff) reset() { b.cur = b.min }

// wait blocks for the current delay or until ctx ends, then doubles it.
func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.cur = min(2*b.cur, b.max)
}

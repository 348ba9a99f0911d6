// Package apivip keeps the control plane's one API address (the API VIP)
// on exactly one ready server at a time.
//
// Every server runs a Holder. While the server is ready (its API answers
// and it sees an etcd quorum) the holder campaigns in its own etcd election
// ("apivip", a short session TTL); the winner puts the address on its
// interface and announces it with gratuitous ARP, so that peers send to
// its MAC at once.
//
//	ready? ──no──▶ not a candidate (address never held)
//	  │yes
//	  ▼
//	campaign ──won──▶ confirm lease + quorum ──▶ add address, GARP
//	  ▲                     │ every CheckInterval: linearizable read of the
//	  │                     │ election key and a lease renewal; each success
//	  │                     │ moves the deadline to (its send time + Hold);
//	  │                     │ the address is renewed with a kernel lifetime
//	  │                     │ that ends before the deadline
//	  │                     ▼
//	  └── resign ◀── remove address ◀── deadline passed, session lost,
//	                                    not ready, or shutdown
//
// No split brain: another server can win only once this server's lease has
// expired, which etcd does no earlier than TTL after the last renewal it
// answered; the holder gives the address up Hold (< TTL) after sending that
// renewal, on its own clock, whether or not its client has noticed
// anything. Should the server be killed, the kernel removes the address
// when its lifetime ends, also before the deadline.
package apivip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/membership"
	"github.com/ouroboros-cloud/ouro/store"
)

// ElectionName is the election the holders campaign in; election.Leader
// with it names the server holding the address.
const ElectionName = "apivip"

// Defaults of Config.
const (
	DefaultTTL           = 2 * time.Second
	DefaultCheckInterval = 200 * time.Millisecond
)

// Address is the virtual address on this machine.
type Address interface {
	// Add puts the address on its interface for lifetime (whole seconds,
	// at least one): the address goes when it ends unless Add is called
	// again, even if this process has died. When the address was not
	// there, Add announces it to the peers on the link.
	Add(lifetime time.Duration) error
	// Remove takes the address off its interface; it is not an error
	// when it is not there.
	Remove() error
}

// Config configures a Holder.
type Config struct {
	// Client is the server's etcd client.
	Client *clientv3.Client
	// Identity names this server in the election (the server's name).
	Identity string
	// Address is the VIP on this machine.
	Address Address
	// Ready reports whether this server may hold the address: its API
	// serves and it sees an etcd quorum. It is called every CheckInterval.
	Ready func(ctx context.Context) error
	// TTL is the election session TTL (default DefaultTTL); whole seconds,
	// at least 2 s.
	TTL time.Duration
	// Hold is how long after sending its last successful confirmation
	// the holder keeps the address (default three quarters of TTL). It
	// must be shorter than TTL.
	Hold time.Duration
	// CheckInterval is how often readiness and, while holding, the lease
	// and quorum are checked (default DefaultCheckInterval).
	CheckInterval time.Duration
	// HandOffEtcdLeader lets the holder move etcd's leadership away from
	// its own member (stacked etcd: Client talks to this server's member
	// only).
	HandOffEtcdLeader bool
	// Logger receives the holder's changes (default slog.Default()).
	Logger *slog.Logger
}

// Holder campaigns for the address and holds it while it may.
type Holder struct {
	cfg Config
	log *slog.Logger

	mu            sync.Mutex
	holding       bool
	handOffFailed map[uint64]time.Time // member → when it last did not take the leadership
}

// New checks cfg and returns a Holder; nothing runs until Run.
func New(cfg Config) (*Holder, error) {
	if cfg.Client == nil || cfg.Address == nil || cfg.Ready == nil {
		return nil, errors.New("apivip: Client, Address and Ready are required")
	}
	if cfg.Identity == "" {
		return nil, errors.New("apivip: Identity is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	cfg.TTL = max(cfg.TTL.Round(time.Second), 2*time.Second)
	if cfg.Hold <= 0 {
		cfg.Hold = cfg.TTL * 3 / 4
	}
	if cfg.Hold >= cfg.TTL {
		return nil, fmt.Errorf("apivip: Hold %v must be shorter than TTL %v", cfg.Hold, cfg.TTL)
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Holder{cfg: cfg, log: cfg.Logger.With("component", "apivip")}, nil
}

// Holding reports whether this server holds the address now.
func (h *Holder) Holding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holding
}

// Run campaigns while the server is ready until ctx ends. It removes a
// leftover address first (a crash may have left it) and, when ctx ends,
// resigns and removes the address before it returns.
func (h *Holder) Run(ctx context.Context) error {
	if err := h.cfg.Address.Remove(); err != nil {
		h.log.Warn("apivip: remove a leftover address", "err", err)
	}
	var running *campaign
	defer func() { running.stop() }()
	tick := time.NewTicker(h.cfg.CheckInterval)
	defer tick.Stop()
	for {
		rctx, rcancel := context.WithTimeout(ctx, h.cfg.TTL)
		err := h.cfg.Ready(rctx)
		rcancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && running != nil:
			h.log.Warn("apivip: not ready, giving the address up", "err", err)
			running.stop()
			running = nil
		case err == nil && running == nil:
			running = h.campaign(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// campaign is a running election.Run.
type campaign struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// campaign starts campaigning until the returned campaign is stopped.
func (h *Holder) campaign(ctx context.Context) *campaign {
	ctx, cancel := context.WithCancel(ctx)
	c := &campaign{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		election.Run(ctx, h.cfg.Client, ElectionName, h.cfg.Identity, h.cfg.TTL, h.lead)
	}()
	return c
}

// stop ends the campaign and waits until it resigned and dropped the
// address; a nil campaign is stopped.
func (c *campaign) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

// lead holds the address for one term: until the deadline passes without
// a confirmation, or ctx ends (session lost, not ready, shutdown). The
// address is put on with a lifetime that ends no later than the deadline,
// so the kernel takes it off in time even if this process dies.
func (h *Holder) lead(ctx context.Context, g store.Guard) {
	// The etcd leader hand-over runs beside the loop, which must never
	// wait on it; the address is dropped before it is waited for.
	var handing sync.WaitGroup
	defer handing.Wait()
	defer h.drop()
	tick := time.NewTicker(h.cfg.CheckInterval)
	defer tick.Stop()
	var deadline, handedOff time.Time
	for {
		// A confirmation may take until the deadline, never longer: the
		// loop must be free to drop the address then.
		sent := time.Now()
		bound := deadline
		if bound.IsZero() {
			bound = sent.Add(h.cfg.Hold)
		}
		err := h.confirm(ctx, g, bound)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			deadline = sent.Add(h.cfg.Hold)
		case deadline.IsZero():
			h.log.Warn("apivip: elected but cannot confirm the lease", "err", err)
			return
		default:
			h.log.Debug("apivip: confirmation failed", "err", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			h.log.Warn("apivip: lease and quorum not confirmed in time, giving the address up", "err", err)
			return
		}
		// Whole seconds, rounded down: the kernel's lifetimes are; less
		// than one left, the address keeps the lifetime it has.
		if life := left.Truncate(time.Second); life >= time.Second {
			if err := h.cfg.Address.Add(life); err != nil {
				h.log.Error("apivip: add the address", "err", err)
				return
			}
			if !h.Holding() {
				h.setHolding(true)
				h.log.Info("apivip: holding the API address")
			}
		}
		if h.cfg.HandOffEtcdLeader && time.Since(handedOff) >= handOffEvery {
			handedOff = time.Now()
			handing.Go(func() { h.handOffEtcdLeader(ctx) })
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// confirm checks, before deadline, with a linearizable read (which needs
// a quorum) that the term's election key still exists, and renews its
// lease: etcd then expires it no earlier than TTL from now.
func (h *Holder) confirm(ctx context.Context, g store.Guard, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	resp, err := h.cfg.Client.Get(ctx, g.Key())
	if err != nil {
		return fmt.Errorf("read election key: %w", err)
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != g.Revision() {
		return errors.New("the election key is gone")
	}
	if _, err := h.cfg.Client.KeepAliveOnce(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// handOffEvery is how often the holder checks whether it leads etcd too.
const handOffEvery = time.Second

// handOffEtcdLeader moves etcd's leadership to another voting member when
// this server's member leads etcd: the death of one machine should cost
// either an etcd election or the expiry of the holder's lease, not both
// in a row (a new etcd leader extends every lease by its election
// timeout), so that the address moves within about the session TTL.
func (h *Holder) handOffEtcdLeader(ctx context.Context) {
	cli := h.cfg.Client
	eps := cli.Endpoints()
	if len(eps) != 1 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, handOffEvery/2)
	defer cancel()
	st, err := cli.Status(ctx, eps[0])
	if err != nil || st.Leader != st.Header.MemberId {
		return
	}
	members, err := cli.MemberList(ctx)
	if err != nil {
		return
	}
	// Only to a server that is alive: while etcd transfers leadership it
	// drops every proposal, and a transfer to a dead member lasts until
	// the election timeout. A dead member stays in the list until it is
	// removed, and its presence for up to PresenceTTL.
	live, err := membership.Present(ctx, cli)
	if err != nil {
		return
	}
	for _, m := range handOffTargets(members.Members, st.Header.MemberId, live, h.handOffFailedRecently) {
		if _, err := cli.MoveLeader(ctx, m.ID); err != nil {
			h.noteHandOffFailed(m.ID)
			h.log.Debug("apivip: hand etcd leadership over", "to", m.Name, "err", err)
			continue
		}
		h.log.Info("apivip: handed etcd leadership over, so that the VIP holder and the etcd leader differ", "to", m.Name)
		return
	}
}

// handOffTargets returns the members etcd's leadership may go to, in
// order: voting members other than self whose servers are live and that
// did not refuse it recently.
func handOffTargets(members []*etcdserverpb.Member, self uint64, live map[string]string, refused func(uint64) bool) []*etcdserverpb.Member {
	var out []*etcdserverpb.Member
	for _, m := range members {
		if m.ID == self || m.IsLearner || m.Name == "" {
			continue
		}
		if _, ok := live[m.Name]; !ok || refused(m.ID) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// handOffBackoff is how long a member that did not take etcd's
// leadership is left alone: a member that is slow or just died would
// otherwise make the leader drop proposals again and again.
const handOffBackoff = 30 * time.Second

func (h *Holder) handOffFailedRecently(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.handOffFailed[id]
	return ok && time.Since(t) < handOffBackoff
}

func (h *Holder) noteHandOffFailed(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handOffFailed == nil {
		h.handOffFailed = map[uint64]time.Time{}
	}
	h.handOffFailed[id] = time.Now()
}

// drop removes the address.
func (h *Holder) drop() {
	if err := h.cfg.Address.Remove(); err != nil {
		h.log.Error("apivip: remove the address", "err", err)
	}
	if h.Holding() {
		h.log.Info("apivip: gave the API address up")
	}
	h.setHolding(false)
}

func (h *Holder) setHolding(v bool) {
	h.mu.Lock()
	h.holding = v
	h.mu.Unlock()
}

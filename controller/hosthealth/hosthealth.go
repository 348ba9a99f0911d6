// Package hosthealth turns host presence into host phase.
//
// Agents heartbeat every DefaultHeartbeatInterval (2 s) through the API,
// which renews the host's presence key with a lease of DefaultLeaseTTL
// (6 s). The lease is the grace period: a host that misses two heartbeats
// in a row is still Ready, one whose lease runs out is not.
//
//	presence key alive           ─▶ phase Ready,    condition Ready=true
//	presence key expired/missing ─▶ phase NotReady, condition Ready=false
//	                                               reason HeartbeatExpired
//
// The controller is driven by a watch of the presence keys and of the
// hosts, with a periodic re-read of all presence keys as a backstop. A new
// leader reads the presence keys before it judges any host, so hosts that
// heartbeat stay Ready across a change of leader without flapping.
package hosthealth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// Heartbeat defaults, shared with the agent and the apiserver.
const (
	// DefaultHeartbeatInterval is how often an agent heartbeats.
	DefaultHeartbeatInterval = 2 * time.Second
	// DefaultLeaseTTL is how long a heartbeat keeps a host alive.
	DefaultLeaseTTL = 6 * time.Second
)

// Reasons of the Ready condition of a host.
const (
	ReasonHeartbeatExpired = "HeartbeatExpired"
	ReasonHeartbeating     = "Heartbeating"
)

// retryDelay is the pause before watching presence again after an error.
const retryDelay = 200 * time.Millisecond

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store; its Presence is watched.
	Store store.Interface
	// Hosts is an informer run by the caller; New registers a handler.
	Hosts    *cache.Informer
	Recorder record.Sink
	Logger   *slog.Logger
	// Resync is how often all presence keys are read again (default
	// cache.DefaultResync).
	Resync time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller keeps host phases in line with presence.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[string]

	mu    sync.Mutex
	alive map[string]bool
}

// New returns a controller and registers its handler on the host informer.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Resync <= 0 {
		o.Resync = cache.DefaultResync
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{o: o, log: o.Logger.With("controller", "hosthealth"), alive: map[string]bool{}}
	c.queue = queue.New("hosthealth", c.reconcile, c.log)
	o.Hosts.AddHandler(c.queue.Add)
	return c
}

// Run watches presence and reconciles hosts until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.o.Hosts.WaitSynced(ctx); err != nil {
		return err
	}
	var rev int64
	for {
		var err error
		if rev, err = c.load(ctx); err == nil {
			break
		}
		c.log.Warn("reading presence failed", "err", err)
		if !sleep(ctx, retryDelay) {
			return nil
		}
	}
	for _, h := range c.o.Hosts.List() {
		c.queue.Add(h.Meta().Name)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.watch(ctx, rev) }()
	c.queue.Run(ctx, 2)
	wg.Wait()
	return nil
}

// load reads all presence keys, queues the names whose liveness changed
// and returns the revision read at.
func (c *Controller) load(ctx context.Context) (int64, error) {
	alive, rev, err := c.o.Store.Presence().Alive(ctx)
	if err != nil {
		return 0, fmt.Errorf("read presence: %w", err)
	}
	c.mu.Lock()
	var changed []string
	for n := range alive {
		if !c.alive[n] {
			changed = append(changed, n)
		}
	}
	for n := range c.alive {
		if !alive[n] {
			changed = append(changed, n)
		}
	}
	c.alive = alive
	c.mu.Unlock()
	for _, n := range changed {
		c.queue.Add(n)
	}
	return rev, nil
}

// watch follows presence changes from rev, reading everything again after
// a failure and every Resync period.
func (c *Controller) watch(ctx context.Context, rev int64) {
	ticker := time.NewTicker(c.o.Resync)
	defer ticker.Stop()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		ch, err := c.o.Store.Presence().Watch(wctx, rev)
		if err == nil {
			rev = c.consume(ctx, ch, ticker.C, rev)
			cancel()
			for range ch {
				// Drain until the store's watch goroutine has stopped.
			}
		} else {
			c.log.Warn("watching presence failed", "err", err)
		}
		cancel()
		if !sleep(ctx, retryDelay) {
			return
		}
		// Whatever broke the watch, start again from a fresh read.
		for ctx.Err() == nil {
			r, err := c.load(ctx)
			if err == nil {
				rev = r
				break
			}
			c.log.Warn("reading presence failed", "err", err)
			sleep(ctx, retryDelay)
		}
	}
}

// consume applies presence events until the stream ends; it returns the
// last revision seen.
func (c *Controller) consume(ctx context.Context, ch <-chan store.PresenceEvent, tick <-chan time.Time, rev int64) int64 {
	for {
		select {
		case <-ctx.Done():
			return rev
		case <-tick:
			if _, err := c.load(ctx); err != nil {
				c.log.Warn("resync of presence failed", "err", err)
			}
		case ev, ok := <-ch:
			if !ok {
				return rev
			}
			if ev.Err != nil {
				if !errors.Is(ev.Err, store.ErrCompacted) {
					c.log.Warn("presence watch ended", "err", ev.Err)
				}
				return rev
			}
			rev = max(rev, ev.Revision)
			c.mu.Lock()
			if ev.Alive {
				c.alive[ev.Name] = true
			} else {
				delete(c.alive, ev.Name)
			}
			c.mu.Unlock()
			c.queue.Add(ev.Name)
		}
	}
}

// Desired returns the status h should have given whether its presence key
// is alive, and whether that differs from what it has.
func Desired(h *api.Host, alive bool, now time.Time) (api.HostStatus, bool) {
	st := h.Status
	cond := api.Condition{Type: api.ConditionReady, Status: true, Reason: ReasonHeartbeating, Message: "the agent heartbeats"}
	phase := api.HostReady
	if !alive {
		phase = api.HostNotReady
		cond = api.Condition{Type: api.ConditionReady, Status: false, Reason: ReasonHeartbeatExpired,
			Message: "no heartbeat within the presence lease"}
	}
	cur := api.FindCondition(st.Conditions, api.ConditionReady)
	if st.Phase == phase && cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason && cur.Message == cond.Message {
		return st, false
	}
	st.Phase = phase
	st.Conditions = api.SetCondition(append([]api.Condition(nil), st.Conditions...), cond, now.UTC())
	return st, true
}

// reconcile sets one host's phase from its presence.
func (c *Controller) reconcile(ctx context.Context, name string) (queue.Result, error) {
	obj, ok := c.o.Hosts.Get(name)
	if !ok {
		return queue.Result{}, nil
	}
	h := obj.(*api.Host)
	c.mu.Lock()
	alive := c.alive[name]
	c.mu.Unlock()
	st, changed := Desired(h, alive, c.o.Now())
	if !changed {
		return queue.Result{}, nil
	}
	cp, err := cache.Copy(h)
	if err != nil {
		return queue.Result{}, err
	}
	oldPhase := cp.Status.Phase
	cp.Status = st
	if err := c.o.Store.Update(ctx, cp); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGuardFailed) {
			return queue.Result{}, nil
		}
		return queue.Result{}, fmt.Errorf("update host %s: %w", name, err)
	}
	if oldPhase != st.Phase {
		c.log.Info("host phase changed", "host", name, "from", oldPhase, "to", st.Phase)
		if c.o.Recorder != nil {
			if st.Phase == api.HostReady {
				c.o.Recorder.Event(ctx, cp, api.EventNormal, "HostReady", "host %s is Ready: its agent heartbeats", name)
			} else {
				c.o.Recorder.Event(ctx, cp, api.EventWarning, "HostNotReady", "host %s is NotReady: no heartbeat within the presence lease", name)
			}
		}
	}
	return queue.Result{}, nil
}

// sleep waits for d or ctx; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

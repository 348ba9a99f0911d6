package volume

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
	"github.com/ouroboros-cloud/ouro/store"
)

// Fencing: a volume of a shared (ceph) pool is locked by the host that
// opened it, and another host may open it only once that host unlocked
// it or is fenced (the agents' side, agent/volumes.go). The fence
// controller fences a host the moment it counts as lost, as the group
// controller does before it replaces the host's members: NotReady for
// HostLostGrace. It lets the host back once the host has been Ready again
// for UnfenceAfter, time for its returning agent to remove the instances
// that were replaced meanwhile.
//
//	host NotReady ≥ grace ─▶ Fencer.Fence(pool, host address), every ceph pool
//	host Ready ≥ UnfenceAfter, fenced or not known ─▶ Fencer.Unfence
//
// What it did is kept in memory: a new leader fences the lost hosts again
// and unfences the Ready ones once (both idempotent).

// Fencer cuts a host, known by its address, off a shared pool, and lets
// it back. Package volume/ceph implements it with the blocklist.
type Fencer interface {
	Fence(ctx context.Context, pool *api.StoragePool, address string) error
	Unfence(ctx context.Context, pool *api.StoragePool, address string) error
}

// DefaultUnfenceAfter is how long a fenced host must be Ready again before
// it is let back.
const DefaultUnfenceAfter = 30 * time.Second

// FenceOptions configure a FenceController.
type FenceOptions struct {
	Store  store.Interface
	Hosts  *cache.Informer
	Fencer Fencer
	// HostLostGrace is how long a host is NotReady before it is fenced.
	HostLostGrace time.Duration
	// UnfenceAfter defaults to DefaultUnfenceAfter.
	UnfenceAfter time.Duration
	Logger       *slog.Logger
}

// FenceController fences lost hosts off the shared pools.
type FenceController struct {
	o     FenceOptions
	log   *slog.Logger
	queue *queue.Queue[string]
	now   func() time.Time

	mu sync.Mutex
	// state is, per host, what this leader did: fenced, or unfenced.
	state map[string]fenceState
}

type fenceState int

const (
	unknown fenceState = iota
	fenced
	unfenced
)

// NewFence returns a fence controller and registers its handler.
func NewFence(o FenceOptions) *FenceController {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.UnfenceAfter <= 0 {
		o.UnfenceAfter = DefaultUnfenceAfter
	}
	c := &FenceController{o: o, log: o.Logger.With("controller", "fence"), now: time.Now, state: map[string]fenceState{}}
	c.queue = queue.New("fence", c.reconcile, c.log)
	o.Hosts.AddHandler(func(key string) { c.queue.Add(key) })
	return c
}

// Run reconciles until ctx ends.
func (c *FenceController) Run(ctx context.Context) error {
	if err := c.o.Hosts.WaitSynced(ctx); err != nil {
		return err
	}
	c.queue.Run(ctx, 1)
	return nil
}

// judgement is what the fence controller does about a host now.
type judgement struct {
	Fence, Unfence bool
	// Again is when to look again (0: at the next change).
	Again time.Duration
}

// judgeHost decides, from the host and what was done last, whether to
// fence or unfence it now.
func judgeHost(h *api.Host, last fenceState, grace, unfenceAfter time.Duration, now time.Time) judgement {
	if h.Status.Address == "" {
		return judgement{}
	}
	c := api.FindCondition(h.Status.Conditions, api.ConditionReady)
	since := time.Duration(0)
	if c != nil && !c.LastTransitionTime.IsZero() {
		since = now.Sub(c.LastTransitionTime)
	}
	switch h.Status.Phase {
	case api.HostNotReady:
		if last == fenced {
			return judgement{}
		}
		if since < grace && c != nil && !c.Status {
			return judgement{Again: grace - since}
		}
		return judgement{Fence: true}
	case api.HostReady:
		if last == unfenced {
			return judgement{}
		}
		if since < unfenceAfter {
			return judgement{Again: unfenceAfter - since}
		}
		return judgement{Unfence: true}
	}
	return judgement{}
}

func (c *FenceController) reconcile(ctx context.Context, key string) (queue.Result, error) {
	o, ok := c.o.Hosts.Get(key)
	if !ok {
		return queue.Result{}, nil
	}
	h := o.(*api.Host)
	c.mu.Lock()
	last := c.state[h.Metadata.Name]
	c.mu.Unlock()
	j := judgeHost(h, last, c.o.HostLostGrace, c.o.UnfenceAfter, c.now())
	if !j.Fence && !j.Unfence {
		return queue.Result{RequeueAfter: j.Again}, nil
	}
	pools, err := c.cephPools(ctx)
	if err != nil {
		return queue.Result{}, err
	}
	var errs []error
	for _, p := range pools {
		if j.Fence {
			err = c.o.Fencer.Fence(ctx, p, h.Status.Address)
		} else {
			err = c.o.Fencer.Unfence(ctx, p, h.Status.Address)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %s: %w", p.Metadata.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		what := "unfence"
		if j.Fence {
			what = "fence"
		}
		return queue.Result{}, fmt.Errorf("%s host %s (%s): %w", what, h.Metadata.Name, h.Status.Address, err)
	}
	next := unfenced
	if j.Fence {
		next = fenced
		if len(pools) > 0 {
			c.log.Warn("host fenced off the shared storage pools", "host", h.Metadata.Name, "address", h.Status.Address, "pools", len(pools))
		}
	} else if last == fenced {
		c.log.Info("host let back to the shared storage pools", "host", h.Metadata.Name, "address", h.Status.Address)
	}
	c.mu.Lock()
	c.state[h.Metadata.Name] = next
	c.mu.Unlock()
	return queue.Result{}, nil
}

// cephPools reads the ceph pools, with their keys, from the store.
func (c *FenceController) cephPools(ctx context.Context) ([]*api.StoragePool, error) {
	objs, _, err := c.o.Store.List(ctx, api.StoragePoolKind, "", store.ListOptions{Filter: func(o api.Object) bool {
		p := o.(*api.StoragePool)
		return p.Spec.Type == api.PoolCeph && p.Spec.Ceph != nil && p.Metadata.DeletionTimestamp == nil
	}})
	if err != nil {
		return nil, fmt.Errorf("list storage pools: %w", err)
	}
	out := make([]*api.StoragePool, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.StoragePool))
	}
	return out, nil
}

// Package loadbalancer is the load balancer controller: it places each
// load balancer on its hosts, resolves its pools' members, holds leaving
// members with a finalizer while they drain, and turns what the LB hosts
// report into the load balancer's status (docs/loadbalancers.md).
//
//	informers: loadbalancers · hostnetworks (+ hosts, instances shared)
//	   │ keys of the load balancers and instances concerned
//	   ▼
//	queue ─▶ reconcile LB:  Compute (placement, VRID, members, health,
//	         │              phase) ─▶ status (compare-and-swap) ─▶ events
//	         └▶ queue the LB's member instances
//	      ─▶ reconcile instance: the finalizer ouro.dev/loadbalancer-drain
//	                 is wanted while some load balancer holds the
//	                 instance (Hold); add or remove it (compare-and-swap)
//
// The network controller reads the placed hosts, the VRID and the
// resolved members from the status and puts them into the LB hosts'
// HostNetworks; the agents report back in the HostNetworks' status. Every
// decision is recomputed from the caches on each pass, so a crash at any
// point is repaired by the next pass, also on another leader.
package loadbalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxConflicts bounds the compare-and-swap attempts of one write.
const maxConflicts = 5

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// LoadBalancers, HostNetworks, Hosts and Instances are informers run
	// by the caller; New registers handlers on them.
	LoadBalancers, HostNetworks, Hosts, Instances *cache.Informer
	// Recorder records events on the load balancers.
	Recorder record.Sink
	Logger   *slog.Logger
	// Workers reconcile keys in parallel (default 2).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// keyKind says what a queue key names.
type keyKind int

const (
	lbKind keyKind = iota
	instanceKind
)

// queueKey names a load balancer or an instance by its cache key.
type queueKey struct {
	kind keyKind
	key  string
}

// String names the key in logs.
func (k queueKey) String() string {
	if k.kind == lbKind {
		return "lb:" + k.key
	}
	return "instance:" + k.key
}

// Controller reconciles load balancers and their members' finalizers.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[queueKey]

	mu      sync.Mutex
	members map[string][]string // LB key → instance keys of its last members
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{o: o, log: o.Logger.With("controller", "loadbalancer"), members: map[string][]string{}}
	c.queue = queue.New("loadbalancer", c.reconcile, c.log).WithBackoff(20*time.Millisecond, 10*time.Second)
	o.LoadBalancers.AddHandler(func(key string) { c.queue.Add(queueKey{lbKind, key}) })
	o.Instances.AddHandler(c.instanceChanged)
	o.Hosts.AddHandler(func(string) { c.queueLBs(func(*api.LoadBalancer) bool { return true }) })
	o.HostNetworks.AddHandler(func(host string) {
		c.queueLBs(func(lb *api.LoadBalancer) bool {
			return slices.ContainsFunc(lb.Status.Hosts, func(h api.LoadBalancerHost) bool { return h.Name == host })
		})
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	for _, in := range []*cache.Informer{c.o.Hosts, c.o.Instances, c.o.LoadBalancers, c.o.HostNetworks} {
		if err := in.WaitSynced(ctx); err != nil {
			return nil // stopping
		}
	}
	c.queueLBs(func(*api.LoadBalancer) bool { return true })
	for _, o := range c.o.Instances.List() {
		c.queue.Add(queueKey{instanceKind, cache.Key(o)})
	}
	c.queue.Run(ctx, c.o.Workers)
	return nil
}

// instanceChanged queues the instance (its finalizer) and the load
// balancers of its project (their members).
func (c *Controller) instanceChanged(key string) {
	c.queue.Add(queueKey{instanceKind, key})
	project, _ := cache.SplitKey(key)
	c.queueLBs(func(lb *api.LoadBalancer) bool { return lb.Metadata.Project == project })
}

// queueLBs queues the cached load balancers match selects.
func (c *Controller) queueLBs(match func(*api.LoadBalancer) bool) {
	for _, o := range c.o.LoadBalancers.List() {
		if lb := o.(*api.LoadBalancer); match(lb) {
			c.queue.Add(queueKey{lbKind, cache.Key(lb)})
		}
	}
}

// reconcile converges one key.
func (c *Controller) reconcile(ctx context.Context, k queueKey) (queue.Result, error) {
	if k.kind == lbKind {
		return queue.Result{}, c.reconcileLB(ctx, k.key)
	}
	return c.reconcileInstance(ctx, k.key)
}

// reconcileLB writes a load balancer's status when it changed, records
// the events of the change, and queues its members' instances.
func (c *Controller) reconcileLB(ctx context.Context, key string) error {
	obj, ok := c.o.LoadBalancers.Get(key)
	if !ok {
		// Gone: its members are free of it.
		c.queueMembers(key, nil)
		return nil
	}
	lb := obj.(*api.LoadBalancer)
	for range maxConflicts {
		st, events := Compute(c.input(lb))
		if statusEqual(lb.Status, st) {
			c.queueMembers(key, st.Members)
			return nil
		}
		next, err := cache.Copy(lb)
		if err != nil {
			return err
		}
		next.Status = st
		err = c.o.Store.Update(ctx, next)
		switch {
		case err == nil:
			c.record(ctx, next, events)
			c.queueMembers(key, st.Members)
			return nil
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGuardFailed):
			return nil
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("update status of load balancer %s: %w", key, err)
		}
		fresh := &api.LoadBalancer{}
		project, name := cache.SplitKey(key)
		if err := c.o.Store.Get(ctx, api.LoadBalancerKind, project, name, fresh); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("get load balancer %s: %w", key, err)
		}
		lb = fresh
	}
	return fmt.Errorf("update status of load balancer %s: %w", key, store.ErrConflict)
}

// input gathers what Compute needs about lb from the caches.
func (c *Controller) input(lb *api.LoadBalancer) Input {
	in := Input{
		LB:       lb,
		Hosts:    map[string]*api.Host{},
		Load:     map[string]int{},
		HostNets: map[string]*api.HostNetwork{},
		Now:      c.o.Now(),
	}
	for _, o := range c.o.Hosts.List() {
		in.Hosts[o.Meta().Name] = o.(*api.Host)
	}
	for _, o := range c.o.LoadBalancers.List() {
		other := o.(*api.LoadBalancer)
		if other.Metadata.UID == lb.Metadata.UID {
			continue
		}
		for _, h := range other.Status.Hosts {
			in.Load[h.Name]++
		}
		if other.Status.NetworkUID == lb.Status.NetworkUID {
			in.Network = append(in.Network, other)
		}
	}
	for _, h := range lb.Status.Hosts {
		if o, ok := c.o.HostNetworks.Get(h.Name); ok {
			in.HostNets[h.Name] = o.(*api.HostNetwork)
		}
	}
	// Hosts placed in this pass report nothing yet; their HostNetworks
	// are read on the next pass, which their change triggers.
	in.Instances = c.projectInstances(lb.Metadata.Project)
	return in
}

// projectInstances returns the cached instances of a project.
func (c *Controller) projectInstances(project string) []*api.Instance {
	var out []*api.Instance
	for _, o := range c.o.Instances.List() {
		if in := o.(*api.Instance); in.Metadata.Project == project {
			out = append(out, in)
		}
	}
	return out
}

// queueMembers queues the instances of a load balancer's members, now and
// at its previous pass, so that each gains or loses the finalizer.
func (c *Controller) queueMembers(lbKey string, members []api.LoadBalancerMember) {
	project, _ := cache.SplitKey(lbKey)
	keys := make([]string, 0, len(members))
	for _, m := range members {
		keys = append(keys, project+"/"+m.Instance)
	}
	c.mu.Lock()
	prev := c.members[lbKey]
	if members == nil {
		delete(c.members, lbKey)
	} else {
		c.members[lbKey] = keys
	}
	c.mu.Unlock()
	for _, k := range append(prev, keys...) {
		c.queue.Add(queueKey{instanceKind, k})
	}
}

// record records events on lb.
func (c *Controller) record(ctx context.Context, lb *api.LoadBalancer, events []Event) {
	for _, e := range events {
		c.log.Info("load balancer event", "lb", cache.Key(lb), "reason", e.Reason, "message", e.Message)
		if c.o.Recorder != nil {
			c.o.Recorder.Event(ctx, lb, e.Type, e.Reason, "%s", e.Message)
		}
	}
}

// statusEqual compares statuses by their JSON.
func statusEqual(a, b api.LoadBalancerStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

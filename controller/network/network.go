// Package network is the network controller: it turns networks, security
// groups, floating IPs, instances, load balancers and hosts into one
// HostNetwork per host (what the host's agent must realise,
// docs/networking.md) and keeps the floating IPs' status (which host and
// instance address their traffic goes to) current.
//
//	informers: networks · securitygroups · floatingips · hostnetworks
//	           (+ hosts, instances, loadbalancers shared with the other
//	           controllers)
//	     │ any change: mark the index stale, queue every host and floating
//	     │ IP after a short debounce (the queue drops duplicates); a
//	     ▼ placement awaiting its ports: its host at once as well
//	queue ─▶ reconcile {hostKey, name}: compute the spec from a shared
//	         index; create, update (generation+1) or, for a deleted host,
//	         delete its HostNetwork — only when the canonical JSON differs
//	      ─▶ reconcile {floatingIPKey, project/name}: write status.host
//	         and status.instanceIP when they differ
//
// The computation is a pure function of a snapshot (Index); every write is
// conditional on the resourceVersion read and goes through the leader's
// guarded store, so a crash at any line or a lost leadership leaves
// nothing half done: the next leader recomputes from scratch.
package network

import (
	"context"
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

// Defaults of Options.
const (
	// DefaultDebounce is the least time between two recomputes of the
	// hosts, so that a burst of changes costs one recompute per host. The
	// first change after a quiet spell is recomputed at once.
	DefaultDebounce = 50 * time.Millisecond
	// defaultWorkers reconcile hosts concurrently.
	defaultWorkers = 2
)

// keyKind says what a queue key stands for.
type keyKind int

// Kinds of queue keys.
const (
	// everyKind stands for every host and floating IP, so that a change
	// costs one queue entry however many hosts there are.
	everyKind keyKind = iota
	// hostKind names a host (and its HostNetwork).
	hostKind
	// floatingIPKind names a floating IP by its cache key.
	floatingIPKind
	// statusKind stands for the Applied condition of every network, from
	// the failures the hosts report (status.go).
	statusKind
)

// queueKey is a queue key: one host, one floating IP, or every of them.
type queueKey struct {
	kind keyKind
	name string
}

// everyKey queues every host and floating IP; statusKey the Applied
// condition of every network.
var (
	everyKey  = queueKey{kind: everyKind}
	statusKey = queueKey{kind: statusKind}
)

func hostKey(name string) queueKey       { return queueKey{kind: hostKind, name: name} }
func floatingIPKey(name string) queueKey { return queueKey{kind: floatingIPKind, name: name} }

// String names the key in logs.
func (k queueKey) String() string {
	switch k.kind {
	case everyKind:
		return "every"
	case hostKind:
		return "host:" + k.name
	case floatingIPKind:
		return "fip:" + k.name
	case statusKind:
		return "network-status"
	}
	return fmt.Sprintf("unknown(%d):%s", k.kind, k.name)
}

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store the controller writes through and
	// its own informers read.
	Store store.Interface
	// Hosts and Instances are informers run by the caller; New registers
	// handlers on them. LoadBalancers, when set, is one too: the load
	// balancers placed on hosts (package loadbalancer) add their ports and
	// HostLoadBalancers.
	Hosts         *cache.Informer
	Instances     *cache.Informer
	LoadBalancers *cache.Informer
	// Recorder, when set, records an event on a network each time it
	// cannot be set up on some host, and when it can again.
	Recorder record.Sink
	Logger   *slog.Logger
	// Resync is the period of the controller's own informers (default
	// cache.DefaultResync).
	Resync time.Duration
	// Debounce overrides DefaultDebounce.
	Debounce time.Duration
}

// Controller computes host networks.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[queueKey]

	networks, groups, fips, hostNets *cache.Informer

	mu         sync.Mutex
	idx        *Index
	stale      bool
	builtAt    time.Time
	minRebuild time.Duration
	fannedOut  time.Time // when every host was last queued
	// placed says a new placement waits in a stale index: the next host
	// key may rebuild it at once, once per minRebuild (urgentAt).
	placed   bool
	urgentAt time.Time
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	c := &Controller{
		o:        o,
		log:      o.Logger.With("controller", "network"),
		networks: cache.New(o.Store, api.NetworkKind, o.Resync, o.Logger),
		groups:   cache.New(o.Store, api.SecurityGroupKind, o.Resync, o.Logger),
		fips:     cache.New(o.Store, api.FloatingIPKind, o.Resync, o.Logger),
		hostNets: cache.New(o.Store, api.HostNetworkKind, o.Resync, o.Logger),
		stale:    true,
		// Rebuilding the index at most this often is safe: every change
		// queues the hosts Debounce later, when the index is rebuilt.
		minRebuild: o.Debounce / 2,
	}
	c.queue = queue.New("network", c.reconcile, c.log)
	for _, in := range c.shared() {
		if in == o.Instances {
			in.AddHandler(c.instanceChanged)
			continue
		}
		in.AddHandler(c.changed)
	}
	for _, in := range []*cache.Informer{c.networks, c.groups, c.fips} {
		in.AddHandler(c.changed)
	}
	c.hostNets.AddHandler(func(name string) {
		c.queue.Add(hostKey(name))
		c.queue.Add(statusKey)
	})
	return c
}

// shared returns the informers the caller runs.
func (c *Controller) shared() []*cache.Informer {
	out := []*cache.Informer{c.o.Hosts, c.o.Instances}
	if c.o.LoadBalancers != nil {
		out = append(out, c.o.LoadBalancers)
	}
	return out
}

// changed notes that the snapshot moved on and queues everything it may
// change: at once after a quiet spell, else once Debounce has passed
// since everything was last queued.
func (c *Controller) changed(string) {
	c.mu.Lock()
	c.stale = true
	wait := c.o.Debounce - time.Since(c.fannedOut)
	c.mu.Unlock()
	if wait <= 0 {
		c.queue.Add(everyKey)
		return
	}
	c.queue.AddAfter(everyKey, wait)
}

// instanceChanged is changed for an instance. An instance not placed yet
// is on no host's network; only security groups that name its address
// may change, which can wait: its change is queued Debounce later and
// does not count as a fan-out, so that its placement, which the
// scheduler writes a moment later, is recomputed at once rather than a
// debounce after its creation. A placement on a real host whose
// HostNetwork lacks the instance's ports is the start of an instance
// waiting for them: that host is queued at once, debounce or not (the
// other hosts, whose security groups may name its address, as usual).
func (c *Controller) instanceChanged(key string) {
	if o, ok := c.o.Instances.Get(key); ok {
		if in, ok := o.(*api.Instance); ok && in.Metadata.DeletionTimestamp == nil {
			if in.Status.Host == "" {
				c.mu.Lock()
				c.stale = true
				c.mu.Unlock()
				c.queue.AddAfter(everyKey, c.o.Debounce)
				return
			}
			if c.awaitsPorts(in) {
				c.mu.Lock()
				c.stale, c.placed = true, true
				c.mu.Unlock()
				c.queue.Add(hostKey(in.Status.Host))
			}
		}
	}
	c.changed(key)
}

// awaitsPorts reports whether in, placed, has interfaces that its real
// host's HostNetwork does not have yet.
func (c *Controller) awaitsPorts(in *api.Instance) bool {
	if terminated(in) || !slices.ContainsFunc(in.Status.Interfaces, func(i api.Interface) bool { return i.IP != "" }) {
		return false
	}
	h, ok := c.o.Hosts.Get(in.Status.Host)
	if !ok || hollow(h) {
		return false
	}
	obj, ok := c.hostNets.Get(in.Status.Host)
	if !ok {
		return true
	}
	for _, n := range obj.(*api.HostNetwork).Spec.Networks {
		for _, p := range n.Ports {
			if p.Instance == in.Metadata.UID {
				return false
			}
		}
	}
	return true
}

// queueEvery queues every real host (hollow ones realise no networks) and
// every floating IP.
func (c *Controller) queueEvery() {
	c.mu.Lock()
	c.fannedOut = time.Now()
	c.mu.Unlock()
	for _, in := range []*cache.Informer{c.o.Hosts, c.hostNets} {
		for _, h := range in.List() {
			if hollow(h) {
				continue
			}
			c.queue.Add(hostKey(h.Meta().Name))
		}
	}
	for _, f := range c.fips.List() {
		c.queue.Add(floatingIPKey(cache.Key(f)))
	}
}

// Run runs the controller's informers and workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, in := range []*cache.Informer{c.networks, c.groups, c.fips, c.hostNets} {
		wg.Add(1)
		go func() { defer wg.Done(); in.Run(ctx) }()
	}
	defer wg.Wait()
	for _, in := range append(c.shared(), c.networks, c.groups, c.fips, c.hostNets) {
		if err := in.WaitSynced(ctx); err != nil {
			return nil // stopping
		}
	}
	c.changed("")
	for _, hn := range c.hostNets.List() {
		c.queue.Add(hostKey(hn.Meta().Name))
	}
	c.queue.Run(ctx, defaultWorkers)
	return nil
}

// index returns the index of the current caches, rebuilt if they changed
// since it was built. To bound the cost of a burst of changes it is
// rebuilt at most every minRebuild: while a stale index is younger than
// that, index returns nil and how long to wait. A host key (urgent) may
// rebuild a younger index for a new placement (instanceChanged), once
// per minRebuild too.
func (c *Controller) index(urgent bool) (*Index, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idx != nil && !c.stale {
		return c.idx, 0
	}
	now := time.Now()
	if age := now.Sub(c.builtAt); c.idx != nil && age < c.minRebuild {
		if !urgent || !c.placed || now.Sub(c.urgentAt) < c.minRebuild {
			return nil, c.minRebuild - age
		}
		c.urgentAt = now
	}
	c.stale, c.placed = false, false
	c.builtAt = now
	snap := Snapshot{
		Hosts:       listAs[*api.Host](c.o.Hosts),
		Networks:    listAs[*api.Network](c.networks),
		Groups:      listAs[*api.SecurityGroup](c.groups),
		FloatingIPs: listAs[*api.FloatingIP](c.fips),
		Instances:   listAs[*api.Instance](c.o.Instances),
	}
	if c.o.LoadBalancers != nil {
		snap.LoadBalancers = listAs[*api.LoadBalancer](c.o.LoadBalancers)
	}
	c.idx = NewIndex(snap)
	return c.idx, 0
}

// listAs returns an informer's objects as T.
func listAs[T api.Object](in *cache.Informer) []T {
	objs := in.List()
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// reconcile converges one queue key; while the index may not be rebuilt
// yet, it asks to be called again when it may.
func (c *Controller) reconcile(ctx context.Context, k queueKey) (queue.Result, error) {
	if k.kind == statusKind {
		return queue.Result{}, c.reconcileNetworkStatus(ctx)
	}
	if k.kind == everyKind {
		// Fanning out needs no index: building one is left to the keys
		// that use it, and none may.
		c.queueEvery()
		return queue.Result{}, nil
	}
	x, wait := c.index(k.kind == hostKind)
	if x == nil {
		return queue.Result{RequeueAfter: wait}, nil
	}
	switch k.kind {
	case hostKind:
		return queue.Result{}, c.reconcileHost(ctx, x, k.name)
	case floatingIPKind:
		return queue.Result{}, c.reconcileFloatingIP(ctx, x, k.name)
	}
	return queue.Result{}, queue.Terminal(fmt.Errorf("unknown key %v", k))
}

// reconcileHost writes the HostNetwork of one host when its spec changed,
// and deletes it when the host is gone.
func (c *Controller) reconcileHost(ctx context.Context, x *Index, host string) error {
	obj, exists := c.hostNets.Get(host)
	if h, ok := c.o.Hosts.Get(host); ok && hollow(h) {
		// Hollow hosts realise no networks; computing their specs would
		// only load the control plane with writes nobody reads.
		if exists {
			if err := c.o.Store.Delete(ctx, api.HostNetworkKind, "", host, obj.Meta().ResourceVersion); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete host network of hollow host %s: %w", host, err)
			}
		}
		return nil
	}
	if !x.HasHost(host) {
		if _, ok := c.o.Hosts.Get(host); ok {
			return fmt.Errorf("host %s not yet in the index", host) // retried
		}
		if !exists {
			return nil
		}
		err := c.o.Store.Delete(ctx, api.HostNetworkKind, "", host, obj.Meta().ResourceVersion)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete host network of deleted host %s: %w", host, err)
		}
		c.log.Info("deleted the host network of a deleted host", "host", host)
		return nil
	}
	spec := x.HostSpec(host)
	if !exists {
		hn := &api.HostNetwork{Kind: api.HostNetworkKind.Name, Metadata: api.ObjectMeta{Name: host}, Spec: spec}
		if _, err := c.o.Store.Create(ctx, hn, store.CreateOptions{}); err != nil {
			return fmt.Errorf("create host network %s: %w", host, err)
		}
		c.log.Debug("created host network", "host", host, "networks", len(spec.Networks))
		return nil
	}
	cur := obj.(*api.HostNetwork)
	if SpecEqual(cur.Spec, spec) {
		return nil
	}
	next, err := cache.Copy(cur)
	if err != nil {
		return err
	}
	next.Spec = spec
	next.Metadata.Generation++
	if err := c.o.Store.Update(ctx, next); err != nil {
		return fmt.Errorf("update host network %s: %w", host, err)
	}
	c.log.Debug("updated host network", "host", host, "generation", next.Metadata.Generation, "networks", len(spec.Networks))
	return nil
}

// reconcileFloatingIP keeps a floating IP's host and instance address
// current.
func (c *Controller) reconcileFloatingIP(ctx context.Context, x *Index, k string) error {
	obj, ok := c.fips.Get(k)
	if !ok {
		return nil
	}
	f := obj.(*api.FloatingIP)
	want := x.FloatingIPStatus(f)
	if want == f.Status {
		return nil
	}
	next, err := cache.Copy(f)
	if err != nil {
		return err
	}
	next.Status = want
	if err := c.o.Store.Update(ctx, next); err != nil {
		return fmt.Errorf("update status of floating IP %s: %w", k, err)
	}
	return nil
}

// hollow reports whether a host (or its HostNetwork, named the same) is a
// simulated host: the label is on the Host object.
func hollow(o api.Object) bool {
	h, ok := o.(*api.Host)
	return ok && h.Metadata.Labels[api.LabelHollow] != ""
}

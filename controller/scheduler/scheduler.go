// Package scheduler places Pending instances on hosts.
//
// Decisions are sequential and in memory; commits are concurrent:
//
//	instance cache ──key──▶ queue ──▶ decide (one worker, under lock):
//	                                    Place(inst, snapshot of hosts)
//	                                    account the allocation at once
//	                                         │
//	                                         ▼
//	                               pending writes (bounded) ─▶ writers:
//	                               what is pending goes out in one guarded
//	                               transaction (store.UpdateBatch), each
//	                               instance compared on the resourceVersion
//	                               read; a failure ─▶ roll that allocation
//	                               back, retry that instance alone
//
// A writer takes everything pending when it starts a transaction, so
// batches form by themselves while the previous transactions are in
// flight, and a lone placement is written at once.
//
// Allocation per host is the sum of spec.resources of the instances placed
// there that are not Terminated, kept incrementally from the instance
// cache plus the placements decided but not yet seen in the cache, so two
// decisions never double-book a host. The same bookkeeping counts, per
// project and anti-affinity key, the instances on each host, so that
// anti-affinity costs a map lookup per host. An instance that fits nowhere stays
// Pending with condition Scheduled=false (reason InsufficientCapacity) and
// is tried again only when a host changes or an allocation shrinks.
//
// The scheduler is safe to stop at any line: everything it knows is
// rebuilt from the store by the next leader, and a commit that raced with
// another change fails on its resourceVersion.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
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
	// DefaultCommits bounds the placement writes pending or in flight.
	DefaultCommits = 256
	// writers is the number of transactions in flight at once.
	writers = 4
	// allocatedDelay batches writes of host.status.allocated.
	allocatedDelay = time.Second
)

// Options configure a Scheduler.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Hosts and Instances are the informers of those kinds; the scheduler
	// registers its handlers on them in New. The caller runs them.
	Hosts, Instances *cache.Informer
	// Recorder receives Scheduled and FailedScheduling events.
	Recorder record.Sink
	Logger   *slog.Logger
	// Commits bounds the store writes pending or in flight (default
	// DefaultCommits).
	Commits int
}

// write is a decision waiting for its transaction: inst placed on host,
// or (host "") recorded as fitting nowhere for reason.
type write struct {
	key    string
	obj    *api.Instance // what to store
	host   string
	reason string
}

// placement is an allocation accounted to a host.
type placement struct {
	host string
	res  api.Resources
	// group is the instance's anti-affinity group ("project/key"), or "".
	group string
}

// affinityGroup returns the key under which inst counts for
// anti-affinity: its project and spec.placement.antiAffinityKey.
func affinityGroup(inst *api.Instance) string {
	if p := inst.Spec.Placement; p != nil && p.AntiAffinityKey != "" {
		return inst.Metadata.Project + "/" + p.AntiAffinityKey
	}
	return ""
}

// usage is the allocation of one host.
type usage struct {
	res   api.Resources
	count int
}

// Scheduler places Pending instances. Create it with New, then Run it.
type Scheduler struct {
	st        store.Interface
	hosts     *cache.Informer
	instances *cache.Informer
	rec       record.Sink
	log       *slog.Logger
	commits   chan struct{} // a slot per write pending or in flight
	kick      chan struct{} // something is pending
	wg        sync.WaitGroup

	pendingMu sync.Mutex
	pending   []write

	queue      *queue.Queue[string] // instance keys to place
	allocQueue *queue.Queue[string] // host names whose status.allocated is stale

	mu       sync.Mutex
	snapshot []HostInfo     // sorted by name
	index    map[string]int // host name → position in snapshot
	alloc    map[string]usage
	placed   map[string]placement // instance key → accounted placement
	assumed  map[string]placement // decided, not yet seen in the cache
	waiting  map[string]bool      // instance keys that fit nowhere
	// peers counts accounted placements per anti-affinity group and host.
	peers map[string]Peers
}

// New returns a scheduler and registers its handlers on the informers.
func New(o Options) *Scheduler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Commits <= 0 {
		o.Commits = DefaultCommits
	}
	s := &Scheduler{
		st:        o.Store,
		hosts:     o.Hosts,
		instances: o.Instances,
		rec:       o.Recorder,
		log:       o.Logger.With("controller", "scheduler"),
		commits:   make(chan struct{}, o.Commits),
		kick:      make(chan struct{}, 1),
		index:     map[string]int{},
		alloc:     map[string]usage{},
		placed:    map[string]placement{},
		assumed:   map[string]placement{},
		waiting:   map[string]bool{},
		peers:     map[string]Peers{},
	}
	s.queue = queue.New("scheduler", s.decide, s.log)
	s.allocQueue = queue.New("scheduler-allocated", s.syncAllocated, s.log)
	o.Hosts.AddHandler(s.hostChanged)
	o.Instances.AddHandler(s.instanceChanged)
	return s
}

// Run places instances until ctx ends. It waits for both caches first, so
// that no decision is made on a partial picture.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.hosts.WaitSynced(ctx); err != nil {
		return err
	}
	if err := s.instances.WaitSynced(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.allocQueue.Run(ctx, 2) }()
	for range writers {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.writeLoop(ctx) }()
	}
	s.queue.Run(ctx, 1)
	wg.Wait()
	s.wg.Wait() // writes in flight
	for ws := s.take(store.MaxBatch); len(ws) > 0; ws = s.take(store.MaxBatch) {
		s.drop(ws)
	}
	return nil
}

// hostInfo makes the scheduling view of a host, without its allocation.
func hostInfo(h *api.Host) HostInfo {
	return HostInfo{
		Name:          h.Metadata.Name,
		Phase:         h.Status.Phase,
		Unschedulable: h.Spec.Unschedulable,
		Taints:        h.Spec.Taints,
		Drivers:       h.Status.Drivers,
		Architecture:  h.Status.Architecture,
		Capacity:      h.Status.Capacity,
		Labels:        h.Metadata.Labels,
	}
}

// sameForScheduling reports whether two views place alike.
func sameForScheduling(a, b *HostInfo) bool {
	return a.Phase == b.Phase && a.Unschedulable == b.Unschedulable &&
		slices.Equal(a.Taints, b.Taints) && slices.Equal(a.Drivers, b.Drivers) &&
		a.Architecture == b.Architecture && a.Capacity == b.Capacity &&
		maps.Equal(a.Labels, b.Labels)
}

// hostChanged updates the snapshot from the host cache.
func (s *Scheduler) hostChanged(name string) {
	obj, ok := s.hosts.Get(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, had := s.index[name]
	switch {
	case !ok && had:
		s.snapshot = slices.Delete(s.snapshot, i, i+1)
		s.reindex()
	case ok && !had:
		hi := hostInfo(obj.(*api.Host))
		u := s.alloc[name]
		hi.Allocated, hi.Instances = u.res, u.count
		s.snapshot = append(s.snapshot, hi)
		sort.Slice(s.snapshot, func(i, j int) bool { return s.snapshot[i].Name < s.snapshot[j].Name })
		s.reindex()
		s.wakeWaiting()
		s.allocQueue.AddAfter(name, allocatedDelay)
	case ok && had:
		hi := hostInfo(obj.(*api.Host))
		cur := &s.snapshot[i]
		if !sameForScheduling(cur, &hi) {
			hi.Allocated, hi.Instances = cur.Allocated, cur.Instances
			*cur = hi
			s.wakeWaiting()
		}
		s.allocQueue.AddAfter(name, allocatedDelay)
	}
}

func (s *Scheduler) reindex() {
	clear(s.index)
	for i := range s.snapshot {
		s.index[s.snapshot[i].Name] = i
	}
}

// wakeWaiting queues every instance that found no host, because something
// changed that may make room. Caller holds s.mu.
func (s *Scheduler) wakeWaiting() {
	for k := range s.waiting {
		s.queue.Add(k)
	}
	clear(s.waiting)
}

// needsPlacement reports whether the scheduler should find a host for inst.
func needsPlacement(inst *api.Instance) bool {
	return inst.Status.Host == "" && inst.Metadata.DeletionTimestamp == nil &&
		(inst.Status.Phase == "" || inst.Status.Phase == api.PhasePending)
}

// instanceChanged updates the allocation from the instance cache and
// queues instances that need a host.
func (s *Scheduler) instanceChanged(key string) {
	var inst *api.Instance
	if obj, ok := s.instances.Get(key); ok {
		inst = obj.(*api.Instance)
	}
	s.mu.Lock()
	s.account(key, inst)
	if inst == nil {
		delete(s.waiting, key)
	}
	s.mu.Unlock()
	if inst != nil && needsPlacement(inst) {
		s.queue.Add(key)
	}
}

// account makes the allocation of instance key match what the cache says
// (inst, nil if gone) plus any assumed placement. Caller holds s.mu.
func (s *Scheduler) account(key string, inst *api.Instance) {
	var want placement
	switch {
	case inst != nil && inst.Status.Host != "":
		delete(s.assumed, key)
		if inst.Status.Phase != api.PhaseTerminated {
			want = placement{inst.Status.Host, inst.Spec.Resources, affinityGroup(inst)}
		}
	case inst != nil:
		want = s.assumed[key]
	}
	cur := s.placed[key]
	if cur == want {
		return
	}
	if cur.host != "" {
		s.addUsage(cur.host, cur.res, -1)
		s.addPeer(cur.group, cur.host, -1)
	}
	if want.host != "" {
		s.addUsage(want.host, want.res, +1)
		s.addPeer(want.group, want.host, +1)
		s.placed[key] = want
	} else {
		delete(s.placed, key)
	}
	if cur.host != "" {
		s.wakeWaiting() // room was freed
	}
}

// addUsage adds (sign +1) or removes (-1) res on host. Caller holds s.mu.
func (s *Scheduler) addUsage(host string, res api.Resources, sign int) {
	u := s.alloc[host]
	if sign > 0 {
		u.res, u.count = u.res.Add(res), u.count+1
	} else {
		u.res, u.count = u.res.Sub(res), u.count-1
	}
	if u.count == 0 {
		delete(s.alloc, host)
	} else {
		s.alloc[host] = u
	}
	if i, ok := s.index[host]; ok {
		s.snapshot[i].Allocated, s.snapshot[i].Instances = u.res, u.count
	}
	s.allocQueue.AddAfter(host, allocatedDelay)
}

// addPeer counts (+1) or uncounts (-1) an instance of anti-affinity group
// on host. Caller holds s.mu.
func (s *Scheduler) addPeer(group, host string, delta int) {
	if group == "" {
		return
	}
	hosts := s.peers[group]
	if hosts == nil {
		hosts = Peers{}
		s.peers[group] = hosts
	}
	if n := hosts[host] + delta; n > 0 {
		hosts[host] = n
	} else {
		delete(hosts, host)
	}
	if len(hosts) == 0 {
		delete(s.peers, group)
	}
}

// decide is the queue handler: it places one instance in memory and hands
// the write to the commit pool.
func (s *Scheduler) decide(ctx context.Context, key string) (queue.Result, error) {
	obj, ok := s.instances.Get(key)
	if !ok {
		return queue.Result{}, nil
	}
	inst := obj.(*api.Instance)
	if !needsPlacement(inst) {
		return queue.Result{}, nil
	}
	s.mu.Lock()
	if _, inFlight := s.assumed[key]; inFlight {
		s.mu.Unlock()
		return queue.Result{}, nil // its commit will requeue it if it fails
	}
	group := affinityGroup(inst)
	host, reason := Place(inst, s.snapshot, s.peers[group])
	if host != "" {
		delete(s.waiting, key)
		s.assumed[key] = placement{host, inst.Spec.Resources, group}
		s.account(key, inst)
	} else {
		s.waiting[key] = true
	}
	s.mu.Unlock()

	if host == "" {
		cond := api.FindCondition(inst.Status.Conditions, api.ConditionScheduled)
		if cond != nil && !cond.Status && cond.Reason == api.ReasonInsufficientCapacity &&
			cond.Message == reason && inst.Status.Phase == api.PhasePending {
			return queue.Result{}, nil // already says so
		}
	}
	select {
	case s.commits <- struct{}{}:
	case <-ctx.Done():
		if host != "" {
			s.rollback(key)
		}
		return queue.Result{}, ctx.Err()
	}
	w := write{key: key, host: host, reason: reason}
	if host != "" {
		w.obj = placedCopy(inst, host, time.Now().UTC())
	} else {
		w.obj = unschedulableCopy(inst, reason, time.Now().UTC())
	}
	s.pendingMu.Lock()
	s.pending = append(s.pending, w)
	s.pendingMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return queue.Result{}, nil
}

// rollback forgets an assumed placement whose commit failed.
func (s *Scheduler) rollback(key string) {
	var inst *api.Instance
	if obj, ok := s.instances.Get(key); ok {
		inst = obj.(*api.Instance)
	}
	s.mu.Lock()
	delete(s.assumed, key)
	s.account(key, inst)
	s.mu.Unlock()
}

// placedCopy returns inst as stored once placed on host. The copy shares
// everything with the cached object but the conditions, which it changes:
// the store only reads it.
func placedCopy(inst *api.Instance, host string, now time.Time) *api.Instance {
	c := *inst
	c.Status.Host = host
	c.Status.Phase = api.PhaseScheduled
	c.Status.Reason, c.Status.Message = "", ""
	c.Status.Conditions = api.SetCondition(slices.Clone(inst.Status.Conditions), api.Condition{
		Type: api.ConditionScheduled, Status: true, Message: "placed on host " + host,
	}, now)
	return &c
}

// unschedulableCopy returns inst as stored once recorded as fitting
// nowhere, sharing what it does not change with inst.
func unschedulableCopy(inst *api.Instance, reason string, now time.Time) *api.Instance {
	c := *inst
	c.Status.Phase = api.PhasePending
	c.Status.Reason, c.Status.Message = api.ReasonInsufficientCapacity, reason
	c.Status.Conditions = api.SetCondition(slices.Clone(inst.Status.Conditions), api.Condition{
		Type: api.ConditionScheduled, Status: false, Reason: api.ReasonInsufficientCapacity, Message: reason,
	}, now)
	return &c
}

// take removes up to n pending writes, at most one per instance (a
// transaction may not write a key twice); a later write of the same
// instance stays pending for the next.
func (s *Scheduler) take(n int) []write {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	var ws []write
	keys := map[string]bool{}
	left := s.pending[:0]
	for _, w := range s.pending {
		if len(ws) == n || keys[w.key] {
			left = append(left, w)
			continue
		}
		keys[w.key] = true
		ws = append(ws, w)
	}
	clear(s.pending[len(left):])
	s.pending = left
	if len(s.pending) > 0 {
		select {
		case s.kick <- struct{}{}: // for another writer
		default:
		}
	}
	return ws
}

// writeLoop writes what is pending, a transaction at a time, until ctx
// ends.
func (s *Scheduler) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		for ctx.Err() == nil {
			ws := s.take(store.MaxBatch)
			if len(ws) == 0 {
				break
			}
			s.commit(ctx, ws)
		}
	}
}

// drop forgets writes that will not be made, as failed ones.
func (s *Scheduler) drop(ws []write) {
	for _, w := range ws {
		if w.host != "" {
			s.rollback(w.key)
		}
		<-s.commits
	}
}

// commit writes ws in one transaction and follows up each: an event on
// success; on failure the allocation rolled back and the instance
// retried.
func (s *Scheduler) commit(ctx context.Context, ws []write) {
	objs := make([]api.Object, len(ws))
	for i, w := range ws {
		objs[i] = w.obj
	}
	errs := s.st.UpdateBatch(ctx, objs)
	for i, w := range ws {
		err := errs[i]
		switch {
		case err != nil && w.host != "":
			s.rollback(w.key)
			s.retry(ctx, w.key, "placing", err)
		case err != nil:
			s.retry(ctx, w.key, "recording unschedulable", err)
		case w.host != "":
			s.queue.Forget(w.key)
			s.log.Debug("placed", "instance", w.key, "host", w.host)
			s.event(ctx, w.obj, api.EventNormal, "Scheduled", "placed on host %s", w.host)
		default:
			s.queue.Forget(w.key)
			s.event(ctx, w.obj, api.EventWarning, "FailedScheduling", "%s", w.reason)
		}
		<-s.commits
	}
}

// retry requeues key after a failed write, unless leadership or the
// instance is gone.
func (s *Scheduler) retry(ctx context.Context, key, what string, err error) {
	switch {
	case ctx.Err() != nil, errors.Is(err, store.ErrGuardFailed):
		s.log.Debug("not leader any more", "instance", key, "err", err)
	case errors.Is(err, store.ErrNotFound):
	case errors.Is(err, store.ErrConflict):
		s.queue.AddRateLimited(key) // the cache catches up meanwhile
	default:
		s.log.Warn(what+" failed", "instance", key, "err", err)
		s.queue.AddRateLimited(key)
	}
}

func (s *Scheduler) event(ctx context.Context, obj api.Object, typ, reason, format string, args ...any) {
	if s.rec != nil {
		s.rec.Event(ctx, obj, typ, reason, format, args...)
	}
}

// syncAllocated writes the scheduler's allocation of a host into its
// status.allocated when they differ.
func (s *Scheduler) syncAllocated(ctx context.Context, name string) (queue.Result, error) {
	obj, ok := s.hosts.Get(name)
	if !ok {
		return queue.Result{}, nil
	}
	h := obj.(*api.Host)
	s.mu.Lock()
	want := s.alloc[name].res
	s.mu.Unlock()
	if h.Status.Allocated == want {
		return queue.Result{}, nil
	}
	c := *h // the store only reads it
	c.Status.Allocated = want
	if err := s.st.Update(ctx, &c); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGuardFailed) {
			return queue.Result{}, nil
		}
		return queue.Result{}, fmt.Errorf("update allocation of host %s: %w", name, err)
	}
	return queue.Result{}, nil
}

// Snapshot returns a copy of the scheduler's current view of the hosts,
// sorted by name.
func (s *Scheduler) Snapshot() []HostInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.snapshot)
}

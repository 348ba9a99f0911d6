// Package lifecycle is the control-plane side of an instance's life: it
// removes instances whose deletion is complete, marks the instances of
// lost hosts, and records an event for every phase the agents report.
//
// Deletion, for an instance with metadata.deletionTimestamp:
//
//	never placed (no status.host) ───────────────▶ delete the object
//	phase Terminated (the agent tore it down) ───▶ delete the object
//	host NotReady (its presence lease expired,
//	checked again in the store), or gone ────────▶ delete the object: the
//	                                                control plane finalizes it
//	                                                (addresses released), so a
//	                                                group can replace it at once
//	otherwise ───────────────────────────────────▶ wait for the agent
//
// An agent that comes back deletes from its host what no longer exists
// (docs/healing.md, fencing), and one whose lease is about to expire has
// already stopped its group members.
//
// Lost hosts: the instances (not Terminated) of a NotReady or deleted
// host get conditions Ready=false and Healthy=false with reason HostLost,
// and, unless Stopped, status.reason HostLost; the phase stays as the
// agent last reported it. This happens once per NotReady period of the
// host; the agent, when back, reports the instances as they are.
//
// Deletes are conditional on the resourceVersion read, so a change that
// races with the decision makes it run again.
//
// Phase events: the controller remembers, per instance, the last phase it
// saw and records an event when a new one appears. Phases present when the
// controller starts (a new leader) are remembered without an event, so a
// restart never replays events; a transition that happens while no leader
// runs may go unrecorded (events are best effort).
package lifecycle

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

// presenceCacheTTL is how long a read of the presence keys answers for:
// finalizing the instances of one lost host reads them once.
const presenceCacheTTL = 500 * time.Millisecond

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Hosts and Instances are informers run by the caller; New registers
	// handlers on them.
	Hosts, Instances *cache.Informer
	Recorder         record.Sink
	Logger           *slog.Logger
	// Workers reconcile in parallel (default 4).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// seen is the last phase recorded for an instance.
type seen struct {
	uid   string
	phase api.InstancePhase
}

// Controller removes finished instances and records phase events.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[string]

	mu        sync.Mutex
	last      map[string]seen            // instance key → last phase seen
	byHost    map[string]map[string]bool // host → keys of the instances placed on it
	onHost    map[string]string          // key → host, for keys in byHost
	hostPhase map[string]api.HostPhase   // last phase seen per host
	marked    map[string]string          // key → NotReady period it was marked HostLost for

	presenceMu   sync.Mutex
	presence     map[string]bool
	presenceRead time.Time
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		o:         o,
		log:       o.Logger.With("controller", "lifecycle"),
		last:      map[string]seen{},
		byHost:    map[string]map[string]bool{},
		onHost:    map[string]string{},
		hostPhase: map[string]api.HostPhase{},
		marked:    map[string]string{},
	}
	c.queue = queue.New("lifecycle", c.reconcile, c.log)
	o.Instances.AddHandler(c.instanceChanged)
	o.Hosts.AddHandler(c.hostChanged)
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.o.Hosts.WaitSynced(ctx); err != nil {
		return err
	}
	if err := c.o.Instances.WaitSynced(ctx); err != nil {
		return err
	}
	c.queue.Run(ctx, c.o.Workers)
	return nil
}

// instanceChanged records phase events and queues deleted instances and
// those on hosts that are not Ready.
func (c *Controller) instanceChanged(key string) {
	obj, ok := c.o.Instances.Get(key)
	c.mu.Lock()
	prev, had := c.last[key]
	if h, ok := c.onHost[key]; ok { // re-added below while it still applies
		delete(c.byHost[h], key)
		if len(c.byHost[h]) == 0 {
			delete(c.byHost, h)
		}
		delete(c.onHost, key)
	}
	if !ok {
		delete(c.last, key)
		delete(c.marked, key)
		c.mu.Unlock()
		return
	}
	inst := obj.(*api.Instance)
	c.last[key] = seen{inst.Metadata.UID, inst.Status.Phase}
	if inst.Status.Host != "" {
		keys := c.byHost[inst.Status.Host]
		if keys == nil {
			keys = map[string]bool{}
			c.byHost[inst.Status.Host] = keys
		}
		keys[key] = true
		c.onHost[key] = inst.Status.Host
	}
	c.mu.Unlock()

	initial := !isClosed(c.o.Instances.Synced())
	if had && prev.uid == inst.Metadata.UID {
		if prev.phase != inst.Status.Phase {
			c.phaseEvent(inst)
		}
	} else if !initial && inst.Status.Phase != "" && inst.Status.Phase != api.PhasePending {
		c.phaseEvent(inst) // first seen in a later phase
	}
	if inst.Metadata.DeletionTimestamp != nil || (inst.Status.Host != "" && !c.hostReady(inst.Status.Host)) {
		c.queue.Add(key)
	}
}

// hostReady reports whether the host object exists and is Ready.
func (c *Controller) hostReady(name string) bool {
	obj, ok := c.o.Hosts.Get(name)
	return ok && obj.(*api.Host).Status.Phase == api.HostReady
}

// phaseEvent records that inst entered its current phase. Scheduled is
// recorded by the scheduler and Pending is where instances start.
func (c *Controller) phaseEvent(inst *api.Instance) {
	p := inst.Status.Phase
	if c.o.Recorder == nil || p == "" || p == api.PhasePending || p == api.PhaseScheduled {
		return
	}
	typ := api.EventNormal
	if p == api.PhaseFailed {
		typ = api.EventWarning
	}
	msg := "instance is " + string(p)
	if inst.Status.Host != "" {
		msg += " on host " + inst.Status.Host
	}
	if inst.Status.Reason != "" {
		msg += ": " + inst.Status.Reason
	}
	if inst.Status.Message != "" {
		msg += ": " + inst.Status.Message
	}
	c.o.Recorder.Event(context.Background(), inst, typ, string(p), "%s", msg)
}

// hostChanged queues the instances on the host when its phase changed
// (or it went): their fate depends on its health.
func (c *Controller) hostChanged(host string) {
	var phase api.HostPhase
	obj, exists := c.o.Hosts.Get(host)
	if exists {
		phase = obj.(*api.Host).Status.Phase
	}
	c.mu.Lock()
	prev, had := c.hostPhase[host]
	if exists {
		c.hostPhase[host] = phase
	} else {
		delete(c.hostPhase, host)
	}
	var keys []string
	if !had || prev != phase || !exists {
		for k := range c.byHost[host] {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// Action is what the controller does with a deleted instance.
type Action int

// Actions of Decide.
const (
	// Nothing: not deleted, or the agent is still tearing it down.
	Nothing Action = iota
	// Delete the object.
	Delete
	// Finalize deletes the object of an instance on a lost host, once the
	// host's lease is confirmed expired.
	Finalize
)

// Decide says what to do with inst given its host (nil if the host object
// does not exist), and a message for an event when the control plane
// finalizes the instance. A deleted instance that still has finalizers is
// left alone: their controllers remove them (also for a lost host).
func Decide(inst *api.Instance, host *api.Host) (act Action, message string) {
	if inst.Metadata.DeletionTimestamp == nil || len(inst.Metadata.Finalizers) > 0 {
		return Nothing, ""
	}
	name := inst.Status.Host
	switch {
	case name == "":
		return Delete, ""
	case inst.Status.Phase == api.PhaseTerminated:
		return Delete, ""
	case host == nil:
		return Finalize, fmt.Sprintf("instance deleted by the control plane: host %s no longer exists", name)
	case host.Status.Phase == api.HostReady:
		return Nothing, ""
	}
	return Finalize, fmt.Sprintf("instance deleted by the control plane: host %s is NotReady (its presence lease expired); its agent removes what is left when it returns", name)
}

// Lost says whether inst, not deleted, is on a lost host (NotReady, or
// deleted), the NotReady period it belongs to ("" for a deleted host), and
// a message.
func Lost(inst *api.Instance, host *api.Host) (lost bool, period, message string) {
	name := inst.Status.Host
	if name == "" || inst.Metadata.DeletionTimestamp != nil {
		return false, "", ""
	}
	switch inst.Status.Phase {
	case "", api.PhasePending, api.PhaseTerminated:
		return false, "", ""
	}
	if host == nil {
		return true, "", fmt.Sprintf("host %s no longer exists", name)
	}
	if host.Status.Phase == api.HostReady {
		return false, "", ""
	}
	msg := fmt.Sprintf("host %s is NotReady: its agent stopped renewing its presence lease", name)
	if cond := api.FindCondition(host.Status.Conditions, api.ConditionReady); cond != nil && !cond.Status && !cond.LastTransitionTime.IsZero() {
		since := cond.LastTransitionTime.UTC()
		period = since.Format(time.RFC3339Nano)
		msg = fmt.Sprintf("host %s is NotReady since %s: its agent stopped renewing its presence lease", name, since.Format(time.RFC3339))
	}
	return true, period, msg
}

// markLost returns a copy of inst marked as on a lost host, or nil when
// it says so already.
func markLost(inst *api.Instance, message string, now time.Time) (*api.Instance, error) {
	ready := api.FindCondition(inst.Status.Conditions, api.ConditionReady)
	healthy := api.FindCondition(inst.Status.Conditions, api.ConditionHealthy)
	stopped := inst.Status.Phase == api.PhaseStopped
	if ready != nil && ready.Reason == api.ReasonHostLost && ready.Message == message && !ready.Status &&
		healthy != nil && healthy.Reason == api.ReasonHostLost && !healthy.Status &&
		(stopped || (inst.Status.Reason == api.ReasonHostLost && inst.Status.Message == message)) {
		return nil, nil
	}
	cp, err := cache.Copy(inst)
	if err != nil {
		return nil, err
	}
	conds := append([]api.Condition(nil), cp.Status.Conditions...)
	for _, typ := range []string{api.ConditionReady, api.ConditionHealthy} {
		conds = api.SetCondition(conds, api.Condition{Type: typ, Status: false, Reason: api.ReasonHostLost, Message: message}, now)
	}
	cp.Status.Conditions = conds
	if !stopped {
		// A stopped instance keeps its reason (Exited, ...): its agent
		// needs it to know whether to start it again.
		cp.Status.Reason, cp.Status.Message = api.ReasonHostLost, message
	}
	return cp, nil
}

// leaseExpired confirms in the store that host's presence lease is gone
// (the host phase may lag behind a host that just came back).
func (c *Controller) leaseExpired(ctx context.Context, host string) (bool, error) {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	now := c.o.Now()
	if c.presence == nil || now.Sub(c.presenceRead) > presenceCacheTTL || now.Before(c.presenceRead) {
		alive, _, err := c.o.Store.Presence().Alive(ctx)
		if err != nil {
			return false, fmt.Errorf("read presence: %w", err)
		}
		c.presence, c.presenceRead = alive, now
	}
	return !c.presence[host], nil
}

// reconcile converges one instance key.
func (c *Controller) reconcile(ctx context.Context, key string) (queue.Result, error) {
	obj, ok := c.o.Instances.Get(key)
	if !ok {
		return queue.Result{}, nil
	}
	inst := obj.(*api.Instance)
	var host *api.Host
	if inst.Status.Host != "" {
		if h, ok := c.o.Hosts.Get(inst.Status.Host); ok {
			host = h.(*api.Host)
		}
	}
	act, msg := Decide(inst, host)
	switch act {
	case Finalize:
		expired, err := c.leaseExpired(ctx, inst.Status.Host)
		if err != nil {
			return queue.Result{}, err
		}
		if !expired {
			// Back: its agent tears the instance down; the host's
			// change to Ready queues the key again if needed.
			return queue.Result{RequeueAfter: presenceCacheTTL}, nil
		}
		fallthrough
	case Delete:
		m := inst.Metadata
		err := c.o.Store.Delete(ctx, api.InstanceKind, m.Project, m.Name, m.ResourceVersion)
		switch {
		case err == nil:
			c.log.Debug("deleted instance", "instance", key)
			if act == Finalize {
				c.log.Info("finalized instance of a lost host", "instance", key, "host", inst.Status.Host)
				if c.o.Recorder != nil {
					c.o.Recorder.Event(ctx, inst, api.EventWarning, "Finalized", "%s", msg)
				}
			}
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGuardFailed):
		default:
			return queue.Result{}, fmt.Errorf("delete instance %s: %w", key, err)
		}
		return queue.Result{}, nil
	}
	return queue.Result{}, c.markIfLost(ctx, key, inst, host)
}

// markIfLost marks an instance of a lost host, once per NotReady period.
func (c *Controller) markIfLost(ctx context.Context, key string, inst *api.Instance, host *api.Host) error {
	lost, period, msg := Lost(inst, host)
	if !lost {
		return nil
	}
	c.mu.Lock()
	done := c.marked[key] == inst.Metadata.UID+"/"+period
	c.mu.Unlock()
	if done {
		return nil // marked already; whatever the agent wrote since stands
	}
	cp, err := markLost(inst, msg, c.o.Now().UTC())
	if err != nil {
		return err
	}
	if cp != nil {
		if err := c.o.Store.Update(ctx, cp); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGuardFailed) {
				return nil
			}
			return fmt.Errorf("mark instance %s lost: %w", key, err)
		}
		if c.o.Recorder != nil {
			c.o.Recorder.Event(ctx, cp, api.EventWarning, api.ReasonHostLost, "%s", msg)
		}
	}
	c.mu.Lock()
	c.marked[key] = inst.Metadata.UID + "/" + period
	c.mu.Unlock()
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Package lifecycle is the control-plane side of an instance's life: it
// removes instances whose deletion is complete and records an event for
// every phase the agents report.
//
// Deletion, for an instance with metadata.deletionTimestamp:
//
//	never placed (no status.host) ───────────────▶ delete the object
//	phase Terminated (the agent tore it down) ───▶ delete the object
//	host NotReady longer than HostGrace, or gone ─▶ stay Terminating, with a
//	                                                message that it waits for
//	                                                the host (never deleted:
//	                                                the host may still run it)
//	otherwise ───────────────────────────────────▶ wait for the agent
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

// DefaultHostGrace is how long a host may be NotReady before a deleted
// instance on it says it waits for the host.
const DefaultHostGrace = 5 * time.Minute

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Hosts and Instances are informers run by the caller; New registers
	// handlers on them.
	Hosts, Instances *cache.Informer
	Recorder         record.Sink
	Logger           *slog.Logger
	// HostGrace defaults to DefaultHostGrace.
	HostGrace time.Duration
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
	queue *queue.Queue

	mu          sync.Mutex
	last        map[string]seen            // instance key → last phase seen
	terminating map[string]map[string]bool // host → keys of deleted instances on it
	onHost      map[string]string          // key → host, for keys in terminating
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HostGrace <= 0 {
		o.HostGrace = DefaultHostGrace
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		o:           o,
		log:         o.Logger.With("controller", "lifecycle"),
		last:        map[string]seen{},
		terminating: map[string]map[string]bool{},
		onHost:      map[string]string{},
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

// instanceChanged records phase events and queues deleted instances.
func (c *Controller) instanceChanged(key string) {
	obj, ok := c.o.Instances.Get(key)
	c.mu.Lock()
	prev, had := c.last[key]
	if h, ok := c.onHost[key]; ok { // re-added below while it still applies
		delete(c.terminating[h], key)
		if len(c.terminating[h]) == 0 {
			delete(c.terminating, h)
		}
		delete(c.onHost, key)
	}
	if !ok {
		delete(c.last, key)
		c.mu.Unlock()
		return
	}
	inst := obj.(*api.Instance)
	c.last[key] = seen{inst.Metadata.UID, inst.Status.Phase}
	if inst.Metadata.DeletionTimestamp != nil && inst.Status.Host != "" {
		keys := c.terminating[inst.Status.Host]
		if keys == nil {
			keys = map[string]bool{}
			c.terminating[inst.Status.Host] = keys
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
	if inst.Metadata.DeletionTimestamp != nil {
		c.queue.Add(key)
	}
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

// hostChanged queues the deleted instances on the host: their fate may
// depend on its health.
func (c *Controller) hostChanged(host string) {
	c.mu.Lock()
	var keys []string
	for k := range c.terminating[host] {
		keys = append(keys, k)
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
	// WaitForHost: keep it, with a message that it waits for its host.
	WaitForHost
)

// Decide says what to do with inst given its host (nil if the host object
// does not exist). For Nothing, recheck > 0 says when the answer may
// change without any object changing (the grace running out).
func Decide(inst *api.Instance, host *api.Host, grace time.Duration, now time.Time) (act Action, message string, recheck time.Duration) {
	if inst.Metadata.DeletionTimestamp == nil {
		return Nothing, "", 0
	}
	name := inst.Status.Host
	switch {
	case name == "":
		return Delete, "", 0
	case inst.Status.Phase == api.PhaseTerminated:
		return Delete, "", 0
	case host == nil:
		return WaitForHost, fmt.Sprintf("waiting for host %s to tear the instance down; the host no longer exists", name), 0
	case host.Status.Phase == api.HostReady:
		return Nothing, "", 0
	}
	since := inst.Metadata.DeletionTimestamp.UTC()
	if cond := api.FindCondition(host.Status.Conditions, api.ConditionReady); cond != nil && !cond.Status && !cond.LastTransitionTime.IsZero() {
		since = cond.LastTransitionTime.UTC()
	}
	if left := since.Add(grace).Sub(now); left > 0 {
		return Nothing, "", left
	}
	return WaitForHost, fmt.Sprintf("waiting for host %s to tear the instance down; the host is NotReady since %s",
		name, since.Format(time.RFC3339)), 0
}

// reconcile converges one instance key.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj, ok := c.o.Instances.Get(key)
	if !ok {
		return nil
	}
	inst := obj.(*api.Instance)
	var host *api.Host
	if inst.Status.Host != "" {
		if h, ok := c.o.Hosts.Get(inst.Status.Host); ok {
			host = h.(*api.Host)
		}
	}
	act, msg, recheck := Decide(inst, host, c.o.HostGrace, c.o.Now())
	switch act {
	case Delete:
		m := inst.Metadata
		err := c.o.Store.Delete(ctx, api.InstanceKind, m.Project, m.Name, m.ResourceVersion)
		switch {
		case err == nil:
			c.log.Debug("deleted instance", "instance", key)
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGuardFailed):
		default:
			return fmt.Errorf("delete instance %s: %w", key, err)
		}
	case WaitForHost:
		if inst.Status.Message == msg && inst.Status.Phase == api.PhaseTerminating {
			return nil
		}
		cp, err := cache.Copy(inst)
		if err != nil {
			return err
		}
		cp.Status.Phase = api.PhaseTerminating
		cp.Status.Message = msg
		if err := c.o.Store.Update(ctx, cp); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGuardFailed) {
				return nil
			}
			return fmt.Errorf("update instance %s: %w", key, err)
		}
		if c.o.Recorder != nil {
			c.o.Recorder.Event(ctx, cp, api.EventWarning, "WaitingForHost", "%s", msg)
		}
	case Nothing:
		if recheck > 0 {
			c.queue.AddAfter(key, recheck)
		}
	}
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

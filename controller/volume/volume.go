// Package volume is the leader's volume controller. It keeps two things
// true that no agent can:
//
//   - status.attachedTo of every volume names the instance whose
//     spec.volumes holds it (the holder of the volume's claim), and the
//     state says in-use or available accordingly once the backend made
//     the volume;
//   - a deleted volume or snapshot whose agent reported its data gone
//     (state "deleted") is removed from the store (agents may not remove
//     finalizers).
//
// It is level-triggered: every change of a volume, snapshot or instance
// queues the volumes concerned, and each reconcile reads the current
// objects from the informers.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/store"
)

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Volumes, Snapshots and Instances are informers run by the caller.
	Volumes, Snapshots, Instances *cache.Informer
	Logger                        *slog.Logger
	// Workers reconcile in parallel (default 2).
	Workers int
}

// Controller reconciles volumes and snapshots.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[string]
}

// resync is how often a volume is looked at without an event.
const resync = 10 * time.Second

// Queue keys are "v/project/name" for volumes, "s/project/name" for
// snapshots.
const (
	volumeKey   = "v/"
	snapshotKey = "s/"
)

// New returns a controller and registers its handlers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	c := &Controller{o: o, log: o.Logger.With("controller", "volume")}
	c.queue = queue.New("volume", c.reconcile, c.log)
	o.Volumes.AddHandler(func(key string) { c.queue.Add(volumeKey + key) })
	o.Snapshots.AddHandler(func(key string) { c.queue.Add(snapshotKey + key) })
	o.Instances.AddHandler(c.instanceChanged)
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	for _, in := range []*cache.Informer{c.o.Volumes, c.o.Snapshots, c.o.Instances} {
		if err := in.WaitSynced(ctx); err != nil {
			return err
		}
	}
	c.queue.Run(ctx, c.o.Workers)
	return nil
}

// instanceChanged queues the volumes of the project: those the instance
// uses now, and those it may have released (a deleted instance is gone
// from the cache, so every volume of the project that names it).
func (c *Controller) instanceChanged(key string) {
	project, name := cache.SplitKey(key)
	for _, o := range c.o.Volumes.List() {
		v := o.(*api.Volume)
		if v.Metadata.Project != project {
			continue
		}
		if v.Status.AttachedTo == name || c.holder(v) == name {
			c.queue.Add(volumeKey + cache.Key(v))
		}
	}
}

// holder returns the instance whose spec.volumes names v, or "".
func (c *Controller) holder(v *api.Volume) string {
	for _, o := range c.o.Instances.List() {
		in := o.(*api.Instance)
		if in.Metadata.Project != v.Metadata.Project {
			continue
		}
		if slices.ContainsFunc(in.Spec.Volumes, func(iv api.InstanceVolume) bool { return iv.Name == v.Metadata.Name }) {
			return in.Metadata.Name
		}
	}
	return ""
}

func (c *Controller) reconcile(ctx context.Context, key string) (queue.Result, error) {
	switch {
	case len(key) > 2 && key[:2] == volumeKey:
		// A periodic look repairs what a missed or reordered event left
		// (attachedTo follows the instances, not the volume's events).
		if _, ok := c.o.Volumes.Get(key[2:]); !ok {
			return queue.Result{}, nil
		}
		return queue.Result{RequeueAfter: resync}, c.reconcileVolume(ctx, key[2:])
	case len(key) > 2 && key[:2] == snapshotKey:
		return queue.Result{}, c.reconcileSnapshot(ctx, key[2:])
	}
	return queue.Result{}, nil
}

func (c *Controller) reconcileVolume(ctx context.Context, key string) error {
	o, ok := c.o.Volumes.Get(key)
	if !ok {
		return nil
	}
	v, err := cache.Copy(o.(*api.Volume))
	if err != nil {
		return err
	}
	if v.Metadata.DeletionTimestamp != nil {
		if v.Status.State == admission.VolumeDeleted {
			return c.remove(ctx, v)
		}
		return nil
	}
	holder := c.holder(v)
	next := v.Status
	next.AttachedTo = holder
	if next.State == api.VolumeAvailable || next.State == api.VolumeInUse {
		next.State = api.VolumeAvailable
		if holder != "" {
			next.State = api.VolumeInUse
		}
	}
	if holder == "" {
		next.Device = ""
	}
	if next == v.Status {
		return nil
	}
	v.Status = next
	if err := c.o.Store.Update(ctx, v); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("update volume %s: %w", key, err)
	}
	// A conflict means a newer version is on its way to the informer,
	// which queues the key again.
	return nil
}

func (c *Controller) reconcileSnapshot(ctx context.Context, key string) error {
	o, ok := c.o.Snapshots.Get(key)
	if !ok {
		return nil
	}
	s := o.(*api.VolumeSnapshot)
	if s.Metadata.DeletionTimestamp == nil || s.Status.State != admission.VolumeDeleted {
		return nil
	}
	if err := c.remove(ctx, s); err != nil {
		return err
	}
	// The volume may be waiting for its snapshots to go.
	c.queue.Add(volumeKey + s.Metadata.Project + "/" + s.Spec.Volume)
	return nil
}

// remove deletes an object whose data is gone, at the version read.
func (c *Controller) remove(ctx context.Context, obj api.Object) error {
	m := obj.Meta()
	err := c.o.Store.Delete(ctx, obj.GetKind(), m.Project, m.Name, m.ResourceVersion)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("remove %s %s/%s: %w", obj.GetKind(), m.Project, m.Name, err)
	}
	c.log.Info("removed", "kind", obj.GetKind().Name, "project", m.Project, "name", m.Name)
	return nil
}

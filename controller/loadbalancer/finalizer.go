package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/store"
)

// reconcileInstance gives an instance the finalizer while some load
// balancer of its project holds it (Hold), and removes it otherwise. A
// deleted instance never gains it. A held member being deleted is looked
// at again when its drain times out.
func (c *Controller) reconcileInstance(ctx context.Context, key string) (queue.Result, error) {
	obj, ok := c.o.Instances.Get(key)
	if !ok {
		return queue.Result{}, nil
	}
	inst := obj.(*api.Instance)
	want, until := c.held(inst)
	has := slices.Contains(inst.Metadata.Finalizers, api.FinalizerLoadBalancer)
	deleting := inst.Metadata.DeletionTimestamp != nil
	var res queue.Result
	if want && deleting && !until.IsZero() {
		res.RequeueAfter = max(until.Sub(c.o.Now()), time.Millisecond)
	}
	switch {
	case want && !has && !deleting:
		return res, c.setFinalizer(ctx, key, true)
	case !want && has:
		return res, c.setFinalizer(ctx, key, false)
	}
	return res, nil
}

// held reports whether some load balancer holds inst, and until when the
// longest drain of a deleted one lasts.
func (c *Controller) held(inst *api.Instance) (bool, time.Time) {
	var host *api.Host
	if o, ok := c.o.Hosts.Get(inst.Status.Host); ok {
		host = o.(*api.Host)
	}
	now := c.o.Now()
	var (
		want  bool
		until time.Time
	)
	for _, o := range c.o.LoadBalancers.List() {
		lb := o.(*api.LoadBalancer)
		if lb.Metadata.Project != inst.Metadata.Project {
			continue
		}
		hostNets := map[string]*api.HostNetwork{}
		for _, h := range lb.Status.Hosts {
			if hn, ok := c.o.HostNetworks.Get(h.Name); ok {
				hostNets[h.Name] = hn.(*api.HostNetwork)
			}
		}
		h, u := Hold(lb, inst, host, ReportsOf(lb.Metadata.UID, lb.Status.Hosts, hostNets), now)
		if h {
			want = true
			if u.After(until) {
				until = u
			}
		}
	}
	return want, until
}

// setFinalizer adds or removes the finalizer, reading the instance again
// after a conflict.
func (c *Controller) setFinalizer(ctx context.Context, key string, add bool) error {
	project, name := cache.SplitKey(key)
	for range maxConflicts {
		inst := &api.Instance{}
		if err := c.o.Store.Get(ctx, api.InstanceKind, project, name, inst); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("get instance %s: %w", key, err)
		}
		fs := inst.Metadata.Finalizers
		has := slices.Contains(fs, api.FinalizerLoadBalancer)
		switch {
		case add && (has || inst.Metadata.DeletionTimestamp != nil):
			return nil
		case add:
			inst.Metadata.Finalizers = append(slices.Clone(fs), api.FinalizerLoadBalancer)
		case !has:
			return nil
		default:
			inst.Metadata.Finalizers = slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == api.FinalizerLoadBalancer })
			if len(inst.Metadata.Finalizers) == 0 {
				inst.Metadata.Finalizers = nil
			}
		}
		err := c.o.Store.Update(ctx, inst)
		switch {
		case err == nil:
			c.log.Debug("set load balancer finalizer", "instance", key, "present", add)
			return nil
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGuardFailed):
			return nil
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("update finalizers of instance %s: %w", key, err)
		}
	}
	return fmt.Errorf("update finalizers of instance %s: %w", key, store.ErrConflict)
}

package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/stack"
)

// Owned objects are deleted newest first (the reverse of the order they
// were recorded in, which is the dependency order), one at a time, as the
// controller's own identity: the change that dropped them, or the
// stack's delete, was authorized already, and a stack must be deletable
// after its author has gone.

// removeUnnamed deletes, newest first, the owned objects the stack no
// longer names, one at a time: each must be gone (an instance has
// terminated) before what it may depend on is deleted.
func (p *pass) removeUnnamed(ctx context.Context) error {
	named := map[string]bool{}
	for _, r := range p.s.Spec.Resources {
		named[r.Kind+"/"+r.Name] = true
	}
	return p.deleteOwned(ctx, func(e *api.StackResourceStatus) bool { return !named[e.Kind+"/"+e.Name] })
}

// deleteOwned deletes the owned objects of the entries sel selects, in
// reverse order of the status, dropping each entry once its object is
// gone; it stops at the first that is not gone yet.
func (p *pass) deleteOwned(ctx context.Context, sel func(*api.StackResourceStatus) bool) error {
	rs := &p.s.Status.Resources
	for j := len(*rs) - 1; j >= 0; j-- {
		e := &(*rs)[j]
		if !sel(e) {
			continue
		}
		k := stack.KindOf(e.Kind)
		var live api.Object
		if k != nil {
			var err error
			if live, err = p.get(ctx, k, e.Name); err != nil {
				return err
			}
		}
		if live == nil || !p.owns(live) {
			*rs = slices.Delete(*rs, j, j+1)
			continue
		}
		gone, err := p.c.o.Writer.DeleteObject(ctx, p.c.o.Store, identity, k, p.s.Metadata.Project, e.Name)
		switch {
		case err != nil && isRetry(err):
			return errRetry
		case err != nil:
			// In use by something still going away: try again soon.
			e.State, e.Message = api.ResourceDeleting, truncate(err.Error(), 512)
			p.waiting = append(p.waiting, fmt.Sprintf("deleting %s %s: %v", e.Kind, e.Name, err))
			return nil
		case gone:
			p.c.o.Recorder.Event(ctx, p.s, api.EventNormal, "Deleted", "deleted %s %s", e.Kind, e.Name)
			*rs = slices.Delete(*rs, j, j+1)
		default:
			e.State, e.Message = api.ResourceDeleting, ""
			p.waiting = append(p.waiting, fmt.Sprintf("waiting for %s %s to be deleted", e.Kind, e.Name))
			return nil
		}
	}
	return nil
}

// teardown deletes everything a deleted stack owns, newest first, then
// removes its finalizer (and the stack, when no other finalizer holds
// it).
func (c *Controller) teardown(ctx context.Context, s *api.Stack) (queue.Result, error) {
	key := cache.Key(s)
	if !slices.Contains(s.Metadata.Finalizers, api.FinalizerStack) {
		return queue.Result{}, nil
	}
	before, _ := json.Marshal(s.Status)
	p := &pass{c: c, s: s, done: map[int]bool{}}
	// Objects created by a pass that stopped before recording them are
	// found by name and label.
	if order, err := stack.Order(s.Spec); err == nil {
		for _, i := range order {
			r := s.Spec.Resources[i]
			if p.entry(r.Kind, r.Name) != nil {
				continue
			}
			if k := stack.KindOf(r.Kind); k != nil {
				live, err := p.get(ctx, k, r.Name)
				if err != nil {
					return retryOn(err, "delete stack "+key)
				}
				if live != nil && p.owns(live) {
					p.addEntry(r.Kind, r.Name, api.ResourceCreated)
				}
			}
		}
	}
	s.Status.Phase, s.Status.Message = api.StackDeleting, ""
	if err := p.deleteOwned(ctx, func(*api.StackResourceStatus) bool { return true }); err != nil {
		return retryOn(err, "delete stack "+key)
	}
	if len(s.Status.Resources) > 0 {
		if len(p.waiting) > 0 {
			s.Status.Message = truncate(p.waiting[0], 1024)
		}
		if after, _ := json.Marshal(s.Status); string(after) != string(before) {
			if err := c.o.Store.Update(ctx, s); err != nil {
				return retryOn(err, "write the status of stack "+key)
			}
		}
		return queue.Result{RequeueAfter: waitPoll}, nil
	}
	s.Metadata.Finalizers = slices.DeleteFunc(slices.Clone(s.Metadata.Finalizers), func(f string) bool { return f == api.FinalizerStack })
	var err error
	if len(s.Metadata.Finalizers) == 0 {
		err = c.o.Store.Delete(ctx, api.StackKind, s.Metadata.Project, s.Metadata.Name, s.Metadata.ResourceVersion)
	} else {
		err = c.o.Store.Update(ctx, s)
	}
	if err != nil {
		return retryOn(err, "remove the finalizer of stack "+key)
	}
	c.log.Info("stack deleted", "stack", key)
	return queue.Result{}, nil
}

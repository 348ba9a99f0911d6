package stack

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/stack"
)

// Owned objects are deleted as the controller's own identity: the change
// that dropped them, or the stack's delete, was authorized already, and a
// stack must be deletable after its author has gone. They go in reverse
// dependency order, in rounds: each round deletes together every selected
// object that no owned object still there depends on; an object that
// goes at once (gone) may free others for the next round, one that takes
// time (an instance terminating) holds only what it depends on until a
// later pass.

// removeUnnamed deletes the owned objects the stack no longer names.
func (p *pass) removeUnnamed(ctx context.Context) error {
	named := map[string]bool{}
	for _, r := range p.s.Spec.Resources {
		named[r.Kind+"/"+r.Name] = true
	}
	return p.deleteOwned(ctx, func(e *api.StackResourceStatus) bool { return !named[e.Kind+"/"+e.Name] })
}

// deleteOwned deletes the owned objects of the entries sel selects in
// reverse dependency order, dropping each entry once its object is gone.
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
		}
	}
	issued := map[string]bool{}
	for {
		batch := p.deletable(sel, issued)
		if len(batch) == 0 {
			break
		}
		for _, d := range batch {
			issued[d.Kind+"/"+d.Name] = true
		}
		p.runDeletes(ctx, batch)
		retry := false
		for _, d := range batch {
			retry = p.recordDelete(ctx, d) || retry
		}
		if retry {
			return errRetry
		}
	}
	p.blocked(sel, issued)
	return nil
}

// deletion is one delete of a round and its outcome.
type deletion struct {
	Kind, Name string
	gone       bool
	err        error
}

// deletable returns the selected entries not deleted yet in this pass
// that no other entry depends on. When there are none while selected
// entries remain, nothing is in the way but the selected entries
// themselves and no delete of this pass is pending, their recorded
// dependencies form a cycle: the newest of them goes first.
func (p *pass) deletable(sel func(*api.StackResourceStatus) bool, issued map[string]bool) []*deletion {
	rs := p.s.Status.Resources
	users := p.users()
	var out []*deletion
	cycle := true
	var newest *api.StackResourceStatus
	for j := range rs {
		e := &rs[j]
		key := e.Kind + "/" + e.Name
		if issued[key] {
			cycle = false // a delete of this pass is still under way
			continue
		}
		if !sel(e) {
			continue
		}
		if len(users[key]) == 0 {
			out = append(out, &deletion{Kind: e.Kind, Name: e.Name})
			continue
		}
		for _, u := range users[key] {
			if !sel(&rs[u]) {
				cycle = false
			}
		}
		newest = e
	}
	if len(out) == 0 && cycle && newest != nil {
		out = append(out, &deletion{Kind: newest.Kind, Name: newest.Name})
	}
	return out
}

// users maps each entry's "Kind/name" to the indexes of the other
// entries that depend on it: by their recorded dependencies, by the
// stack's spec when it still names them, and, for an entry without
// recorded dependencies that the spec no longer names, every entry
// before it (the order it was created in).
func (p *pass) users() map[string][]int {
	rs := p.s.Status.Resources
	spec := p.s.Spec
	named := map[string]int{}
	for i, r := range spec.Resources {
		named[r.Kind+"/"+r.Name] = i
	}
	out := map[string][]int{}
	for u := range rs {
		deps := map[string]bool{}
		for _, d := range rs[u].DependsOn {
			deps[d] = true
		}
		i, ok := named[rs[u].Kind+"/"+rs[u].Name]
		if ok {
			for _, d := range stack.DependsOn(spec, i) {
				deps[spec.Resources[d].Kind+"/"+spec.Resources[d].Name] = true
			}
		}
		if !ok && rs[u].DependsOn == nil {
			for _, e := range rs[:u] {
				deps[e.Kind+"/"+e.Name] = true
			}
		}
		for d := range deps {
			if d != rs[u].Kind+"/"+rs[u].Name {
				out[d] = append(out[d], u)
			}
		}
	}
	return out
}

// runDeletes issues the deletes of a round, at most parallel at a time,
// and waits for their answers.
func (p *pass) runDeletes(ctx context.Context, batch []*deletion) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, d := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.gone, d.err = p.c.o.Writer.DeleteObject(ctx, p.c.o.Store, identity, stack.KindOf(d.Kind), p.s.Metadata.Project, d.Name)
		}()
	}
	wg.Wait()
}

// recordDelete puts a delete's outcome in the status; it reports whether
// the pass must run again.
func (p *pass) recordDelete(ctx context.Context, d *deletion) (retry bool) {
	rs := &p.s.Status.Resources
	j := slices.IndexFunc(*rs, func(e api.StackResourceStatus) bool { return e.Kind == d.Kind && e.Name == d.Name })
	if j < 0 {
		return false
	}
	e := &(*rs)[j]
	switch {
	case d.err != nil && isRetry(d.err):
		return true
	case d.err != nil:
		// In use by something still going away: try again soon.
		e.State, e.Message = api.ResourceDeleting, truncate(d.err.Error(), 512)
		p.waiting = append(p.waiting, fmt.Sprintf("deleting %s %s: %v", e.Kind, e.Name, d.err))
	case d.gone:
		p.c.o.Recorder.Event(ctx, p.s, api.EventNormal, "Deleted", "deleted %s %s", e.Kind, e.Name)
		*rs = slices.Delete(*rs, j, j+1)
	default:
		e.State, e.Message = api.ResourceDeleting, ""
		p.waiting = append(p.waiting, fmt.Sprintf("waiting for %s %s to be deleted", e.Kind, e.Name))
	}
	return false
}

// blocked records, for the selected entries left untouched, that they
// wait for an owned object that depends on them and is not being
// deleted (one the stack still names, not yet updated to do without).
func (p *pass) blocked(sel func(*api.StackResourceStatus) bool, issued map[string]bool) {
	rs := p.s.Status.Resources
	users := p.users()
	for j := range rs {
		e := &rs[j]
		if !sel(e) || issued[e.Kind+"/"+e.Name] {
			continue
		}
		for _, u := range users[e.Kind+"/"+e.Name] {
			if !sel(&rs[u]) {
				p.waiting = append(p.waiting, fmt.Sprintf("deleting %s %s: %s %s still depends on it", e.Kind, e.Name, rs[u].Kind, rs[u].Name))
				break
			}
		}
	}
}

// teardown deletes everything a deleted stack owns, newest first, then
// removes its finalizer (and the stack, when no other finalizer holds
// it).
func (c *Controller) teardown(ctx context.Context, s *api.Stack) (queue.Result, error) {
	key := cache.Key(s)
	if !slices.Contains(s.Metadata.Finalizers, api.FinalizerStack) {
		return queue.Result{}, nil
	}
	p := newPass(c, s)
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
		if err := p.save(ctx); err != nil {
			return retryOn(err, "write the status of stack "+key)
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

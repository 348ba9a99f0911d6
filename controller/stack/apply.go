package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/stack"
	"github.com/ouroboros-cloud/ouro/store"
)

// errRetry ends a pass early to run it again from a fresh read: the
// stack or an object changed under it.
var errRetry = errors.New("changed meanwhile; again")

// pass is one reconciliation of one stack.
type pass struct {
	c     *Controller
	s     *api.Stack
	id    *auth.Identity
	idErr error
	// done holds the resources that exist as the stack says after this
	// pass: their dependents may go ahead.
	done map[int]bool
	// waiting and failed say what holds the stack back, for the phase.
	waiting, failed []string
	// drift is what this pass found different.
	drift []api.StackDrift
	// deps are the dependencies of each resource (stack.DependsOn).
	deps [][]int
	// written is the status as last read or written, so that an
	// unchanged status is not written again.
	written string
}

// reconcile brings one stack's owned objects in line with it.
func (c *Controller) reconcile(ctx context.Context, key string) (queue.Result, error) {
	project, name := cache.SplitKey(key)
	s := &api.Stack{}
	if err := c.o.Store.Get(ctx, api.StackKind, project, name, s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return queue.Result{}, nil
		}
		return queue.Result{}, fmt.Errorf("get stack %s: %w", key, err)
	}
	if s.Metadata.DeletionTimestamp != nil {
		return c.teardown(ctx, s)
	}
	if !slices.Contains(s.Metadata.Finalizers, api.FinalizerStack) {
		s.Metadata.Finalizers = append(slices.Clone(s.Metadata.Finalizers), api.FinalizerStack)
		if err := c.o.Store.Update(ctx, s); err != nil {
			return retryOn(err, "add the finalizer of stack "+key)
		}
	}
	p := newPass(c, s)
	p.id, p.idErr = c.authorIdentity(ctx, s)
	if err := p.apply(ctx); err != nil {
		return retryOn(err, "apply stack "+key)
	}
	p.finish()
	if err := p.save(ctx); err != nil {
		return retryOn(err, "write the status of stack "+key)
	}
	switch {
	case len(p.failed) > 0:
		return queue.Result{RequeueAfter: failedRetry}, nil
	case len(p.waiting) > 0:
		return queue.Result{RequeueAfter: waitPoll}, nil
	}
	return queue.Result{}, nil
}

// retryOn turns a write error into the queue's answer: again soon after a
// conflict, nothing once leadership is lost, back-off otherwise.
func retryOn(err error, what string) (queue.Result, error) {
	switch {
	case errors.Is(err, errRetry), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrAlreadyExists):
		return queue.Result{Requeue: true}, nil
	case errors.Is(err, store.ErrGuardFailed), errors.Is(err, store.ErrNotFound):
		return queue.Result{}, nil
	}
	return queue.Result{}, fmt.Errorf("%s: %w", what, err)
}

// apply creates and updates the stack's resources level by level (see
// applyLevel), then deletes what the stack no longer names and resolves
// the outputs. An error ends the pass (to be run again); what a resource
// cannot do is recorded in its status instead.
func (p *pass) apply(ctx context.Context) error {
	order, err := stack.Order(p.s.Spec)
	if err != nil {
		p.failed = append(p.failed, err.Error())
		return nil
	}
	p.deps = make([][]int, len(p.s.Spec.Resources))
	for _, i := range order {
		p.deps[i] = stack.DependsOn(p.s.Spec, i)
	}
	for _, level := range levels(order, p.deps) {
		if err := p.applyLevel(ctx, level); err != nil {
			return err
		}
	}
	if err := p.removeUnnamed(ctx); err != nil {
		return err
	}
	p.outputs(ctx)
	return nil
}

// plan decides what resource i needs: nothing (it is as the stack says,
// waits, or fails, all recorded in the status), or a write, returned as a
// step. A create's entry is Pending when plan returns.
func (p *pass) plan(ctx context.Context, i int) (*step, error) {
	spec := p.s.Spec
	r := spec.Resources[i]
	k := stack.KindOf(r.Kind)
	if k == nil {
		p.fail(r, nil, "kind %q is not known", r.Kind)
		return nil, nil
	}
	for _, d := range p.deps[i] {
		if !p.done[d] {
			dr := spec.Resources[d]
			p.wait(r, "waiting for %s %s", dr.Kind, dr.Name)
			return nil, nil
		}
	}
	resolved, unresolved, err := stack.Resolve(r.Spec, p.lookup(ctx))
	if err != nil {
		p.fail(r, nil, "%v", err)
		return nil, nil
	}
	if len(unresolved) > 0 {
		p.wait(r, "waiting for %s", refString(unresolved[0]))
		return nil, nil
	}
	live, err := p.get(ctx, k, r.Name)
	if err != nil {
		return nil, err
	}
	e := p.entry(r.Kind, r.Name)
	hash := hashOf(r, resolved)
	if live == nil {
		return p.planCreate(i, k, e, resolved, hash), nil
	}
	if !p.owns(live) {
		p.fail(r, e, "%s %s exists and is not owned by stack %s", r.Kind, r.Name, p.s.Metadata.Name)
		return nil, nil
	}
	if live.Meta().DeletionTimestamp != nil {
		p.wait(r, "%s %s is being deleted", r.Kind, r.Name)
		return nil, nil
	}
	switch {
	case e == nil:
		// Made with the stack's label but never recorded: brought in
		// line with the stack like any owned object.
		e = p.addEntry(r.Kind, r.Name, api.ResourceCreated)
	case e.State == api.ResourcePending && e.AppliedHash == hash:
		// Created from this very spec by a pass that stopped before
		// recording it: what the server stored otherwise is its doing.
		e.State, e.Defaulted = api.ResourceCreated, defaulted(resolved, live)
	}
	e.UID = live.Meta().UID
	liveSpec, err := specJSON(live)
	if err != nil {
		return nil, err
	}
	want := adjust(resolved, e.Defaulted)
	fields := append(stack.Diff(want, liveSpec), stack.DiffMetadata(r, live.Meta())...)
	if len(fields) == 0 {
		e.AppliedHash, e.Message = hash, ""
		e.DependsOn = p.depNames(i)
		if e.State != api.ResourceUpdated {
			e.State = api.ResourceCreated
		}
		if ready(live) {
			e.State = api.ResourceReady
		}
		p.done[i] = true
		return nil, nil
	}
	report := spec.Drift == api.DriftReport
	if e.AppliedHash == hash {
		// The stack did not change but the object did: drift.
		for _, f := range fields {
			p.drift = append(p.drift, api.StackDrift{Kind: r.Kind, Name: r.Name, Field: prefixSpec(f.Field), Want: f.Want, Got: f.Got, Corrected: !report})
		}
		if report {
			e.Message = "differs from the stack (drift: report)"
			p.done[i] = true
			return nil, nil
		}
	}
	if err := p.may(auth.VerbUpdate, k, r.Name); err != nil {
		p.fail(r, e, "%v", err)
		return nil, nil
	}
	obj, err := p.merged(live, r, want)
	if err != nil {
		return nil, err
	}
	return &step{i: i, k: k, obj: obj, resolved: resolved, hash: hash}, nil
}

// planCreate prepares the create of the missing object of resource i,
// marking its entry Pending: the level's Pending entries are written
// before any of its creates, so a pass that stops between the two finds
// the object by its label next time, and the idempotency key makes the
// create itself safe to repeat. It returns nil when nothing is to be
// created.
func (p *pass) planCreate(i int, k *api.Kind, e *api.StackResourceStatus, resolved json.RawMessage, hash string) *step {
	r := p.s.Spec.Resources[i]
	if e != nil && e.UID != "" && e.State != api.ResourcePending {
		// It existed and was deleted outside the stack.
		report := p.s.Spec.Drift == api.DriftReport
		p.drift = append(p.drift, api.StackDrift{Kind: r.Kind, Name: r.Name, Want: "exists", Got: "missing", Corrected: !report})
		if report {
			e.Message = "deleted outside the stack (drift: report)"
			p.done[i] = true
			return nil
		}
	}
	if err := p.may(auth.VerbCreate, k, ""); err != nil {
		p.fail(r, e, "%v", err)
		return nil
	}
	prevUID := ""
	if e == nil {
		e = p.addEntry(r.Kind, r.Name, api.ResourcePending)
	} else {
		prevUID = e.UID
		e.State, e.Message = api.ResourcePending, ""
	}
	e.AppliedHash, e.DependsOn = hash, p.depNames(i)
	obj, err := p.build(k, r, resolved)
	if err != nil {
		p.fail(r, e, "%v", err)
		return nil
	}
	key := idempotencyKey(p.s.Metadata.UID, r.Kind, r.Name, prevUID, hash)
	return &step{i: i, k: k, create: true, obj: obj, key: key, resolved: resolved, hash: hash}
}

// outputs resolves the stack's outputs into the status.
func (p *pass) outputs(ctx context.Context) {
	if len(p.s.Spec.Outputs) == 0 {
		p.s.Status.Outputs = nil
		return
	}
	outs := map[string]string{}
	for name, expr := range p.s.Spec.Outputs {
		raw, _ := json.Marshal(expr)
		res, unresolved, err := stack.Resolve(raw, p.lookup(ctx))
		switch {
		case err != nil:
			p.failed = append(p.failed, fmt.Sprintf("output %s: %v", name, err))
			continue
		case len(unresolved) > 0:
			p.waiting = append(p.waiting, fmt.Sprintf("output %s waits for %s", name, refString(unresolved[0])))
			continue
		}
		var v string
		if err := json.Unmarshal(res, &v); err != nil {
			v = string(res)
		}
		outs[name] = v
	}
	p.s.Status.Outputs = outs
}

// finish sets the phase, message and drift of the status and records the
// events of new drift and new failures.
func (p *pass) finish() {
	st := &p.s.Status
	p.mergeDrift()
	oldMsg := st.Message
	switch {
	case len(p.failed) > 0:
		st.Phase, st.Message = api.StackFailed, truncate(strings.Join(p.failed, "; "), 1024)
		if st.Message != oldMsg {
			p.c.o.Recorder.Event(context.Background(), p.s, api.EventWarning, "Failed", "%s", st.Message)
		}
	case len(p.waiting) > 0:
		st.Phase, st.Message = api.StackApplying, truncate(p.waiting[0], 1024)
	default:
		st.Phase, st.Message = api.StackApplied, ""
		st.ObservedGeneration = p.s.Metadata.Generation
	}
}

// mergeDrift puts this pass's findings in the status: a difference seen
// before keeps its first sighting (so an unchanged stack is not written
// again); corrected differences stay listed until the stack's spec
// changes; reported ones go once they are no longer there. New ones are
// told in a Drift event.
func (p *pass) mergeDrift() {
	st := &p.s.Status
	same := func(a, b api.StackDrift) bool {
		return a.Kind == b.Kind && a.Name == b.Name && a.Field == b.Field && a.Want == b.Want && a.Got == b.Got
	}
	newSpec := st.ObservedGeneration != p.s.Metadata.Generation
	var out []api.StackDrift
	for _, d := range p.drift {
		if i := slices.IndexFunc(st.Drift, func(o api.StackDrift) bool { return same(o, d) }); i >= 0 {
			out = append(out, st.Drift[i])
			continue
		}
		now := p.c.o.Now().UTC()
		d.Seen = &now
		out = append(out, d)
		what := d.Field
		if what == "" {
			what = "the object"
		}
		verb := "reported"
		if d.Corrected {
			verb = "put back"
		}
		p.c.o.Recorder.Event(context.Background(), p.s, api.EventWarning, "Drift", "%s %s: %s is %s, the stack says %s; %s", d.Kind, d.Name, what, d.Got, d.Want, verb)
	}
	if !newSpec {
		for _, o := range st.Drift {
			if o.Corrected && !slices.ContainsFunc(out, func(d api.StackDrift) bool { return same(o, d) }) {
				out = append(out, o)
			}
		}
	}
	st.Drift = out
}

// may says why the stack's author may not do verb on an object of kind
// k, or nil if they may: a stack cannot do what its author could not.
// The write itself is authorized again by the API's path.
func (p *pass) may(verb auth.Verb, k *api.Kind, name string) error {
	if p.idErr != nil {
		return p.idErr
	}
	a := auth.Attributes{Verb: verb, Resource: k.Plural, Name: name}
	if k.Namespaced {
		a.Project = p.s.Metadata.Project
	}
	if auth.Authorize(p.id, a) != auth.Allow {
		role := p.id.Roles[p.s.Metadata.Project]
		if role == "" {
			role = "none"
		}
		return fmt.Errorf("the stack's author, user %s (role in project %s: %s), may not %s %s", p.id.User, p.s.Metadata.Project, role, verb, k.Plural)
	}
	return nil
}

// fail records that resource r cannot be applied, naming it and its
// source in the stack's message.
func (p *pass) fail(r api.StackResource, e *api.StackResourceStatus, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if e != nil {
		e.State, e.Message = api.ResourceFailed, truncate(msg, 512)
	}
	where := r.Kind + " " + r.Name
	if r.Source != "" {
		where += " (" + r.Source + ")"
	}
	p.failed = append(p.failed, where+": "+msg)
}

// wait records that resource r waits for something.
func (p *pass) wait(r api.StackResource, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if e := p.entry(r.Kind, r.Name); e != nil {
		e.Message = truncate(msg, 512)
	}
	p.waiting = append(p.waiting, r.Kind+" "+r.Name+": "+msg)
}

// entry returns the status entry of an owned object, or nil.
func (p *pass) entry(kind, name string) *api.StackResourceStatus {
	rs := p.s.Status.Resources
	for i := range rs {
		if rs[i].Kind == kind && rs[i].Name == name {
			return &rs[i]
		}
	}
	return nil
}

// addEntry appends a status entry and returns it.
func (p *pass) addEntry(kind, name, state string) *api.StackResourceStatus {
	p.s.Status.Resources = append(p.s.Status.Resources, api.StackResourceStatus{Kind: kind, Name: name, State: state})
	return &p.s.Status.Resources[len(p.s.Status.Resources)-1]
}

// isRetry reports whether a write failed because something changed
// meanwhile (or leadership was lost): the pass runs again.
func isRetry(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeConflict {
		return true
	}
	return errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrGuardFailed)
}

func refString(r stack.Ref) string {
	return "${" + r.Kind + "/" + r.Name + "." + r.Path + "}"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

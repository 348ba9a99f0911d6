package stack

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// A pass applies the stack one dependency level at a time: the resources
// whose dependencies are all in earlier levels. For each level it decides
// what every resource needs (plan), records the level's creates Pending
// in one status write, makes the level's creates and updates together
// (at most parallel at a time), and records their results in one status
// write before the next level, whose references may need them.

// parallel bounds the writes of a level (and the deletes of a round) made
// at once.
const parallel = 16

// step is one write of a level: the create or update of resource i.
type step struct {
	i      int
	k      *api.Kind
	create bool
	// obj is the object to write; key the idempotency key of a create.
	obj api.Object
	key string
	// resolved and hash are the resolved spec and its hash (hashOf).
	resolved json.RawMessage
	hash     string
	// err is the write's outcome.
	err error
}

// newPass returns a pass over stack s as read from the store.
func newPass(c *Controller, s *api.Stack) *pass {
	b, _ := json.Marshal(s.Status)
	return &pass{c: c, s: s, done: map[int]bool{}, written: string(b)}
}

// levels splits a dependency order into levels: a resource's level is one
// more than the highest of its dependencies' (0 without any), so the
// resources of a level depend only on those of earlier ones. Within a
// level the order is kept.
func levels(order []int, deps [][]int) [][]int {
	depth := make([]int, len(deps))
	var out [][]int
	for _, i := range order {
		d := 0
		for _, j := range deps[i] {
			d = max(d, depth[j]+1)
		}
		depth[i] = d
		for len(out) <= d {
			out = append(out, nil)
		}
		out[d] = append(out[d], i)
	}
	return out
}

// applyLevel plans the resources of one level, writes the status with
// the level's creates Pending, makes the level's writes together and
// records their results.
func (p *pass) applyLevel(ctx context.Context, level []int) error {
	var steps []*step
	creates := false
	for _, i := range level {
		st, err := p.plan(ctx, i)
		if err != nil {
			return err
		}
		if st != nil {
			steps = append(steps, st)
			creates = creates || st.create
		}
	}
	if len(steps) == 0 {
		return nil
	}
	if creates {
		p.s.Status.Phase = api.StackApplying
		if err := p.save(ctx); err != nil {
			return err
		}
	}
	p.run(ctx, steps)
	retry := false
	for _, st := range steps {
		retry = p.record(ctx, st) || retry
	}
	if retry {
		// What was made is found by its label (and Pending entry) next
		// time.
		return errRetry
	}
	return p.save(ctx)
}

// run makes the steps' writes, at most parallel at a time, and waits for
// all of them.
func (p *pass) run(ctx context.Context, steps []*step) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, st := range steps {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st.err = p.write(ctx, st)
		}()
	}
	wg.Wait()
}

// write makes one step's write. It only reads the pass.
func (p *pass) write(ctx context.Context, st *step) error {
	w := p.c.o.Writer
	if !st.create {
		return w.UpdateObject(ctx, p.c.o.Store, p.id, st.obj)
	}
	_, err := w.CreateObject(ctx, p.c.o.Store, p.id, st.obj, st.key)
	if errors.Is(err, store.ErrNotFound) {
		// Made with this key once and deleted since: the name is free,
		// so a create without the key cannot duplicate.
		obj, berr := p.build(st.k, p.s.Spec.Resources[st.i], st.resolved)
		if berr != nil {
			return berr
		}
		st.obj = obj
		_, err = w.CreateObject(ctx, p.c.o.Store, p.id, obj, "")
	}
	return err
}

// record puts a step's outcome in the resource's entry; it reports
// whether the write must be tried again in a new pass.
func (p *pass) record(ctx context.Context, st *step) (retry bool) {
	r := p.s.Spec.Resources[st.i]
	e := p.entry(r.Kind, r.Name)
	if st.err != nil {
		if isRetry(st.err) {
			return true
		}
		verb := "update"
		if st.create {
			verb = "create"
		}
		p.fail(r, e, "%s: %v", verb, st.err)
		return false
	}
	if st.create {
		e.State = api.ResourceCreated
		p.c.o.Recorder.Event(ctx, p.s, api.EventNormal, "Created", "created %s %s", r.Kind, r.Name)
	} else {
		e.State = api.ResourceUpdated
	}
	e.UID, e.AppliedHash, e.Message = st.obj.Meta().UID, st.hash, ""
	e.Defaulted = defaulted(st.resolved, st.obj)
	e.DependsOn = p.depNames(st.i)
	p.done[st.i] = true
	return false
}

// save writes the stack (its status) unless the status is as last
// written.
func (p *pass) save(ctx context.Context) error {
	b, _ := json.Marshal(p.s.Status)
	if string(b) == p.written {
		return nil
	}
	if err := p.c.o.Store.Update(ctx, p.s); err != nil {
		return err
	}
	p.written = string(b)
	return nil
}

// depNames returns the dependencies of resource i as "Kind/name".
func (p *pass) depNames(i int) []string {
	out := []string{}
	for _, d := range p.deps[i] {
		r := p.s.Spec.Resources[d]
		out = append(out, r.Kind+"/"+r.Name)
	}
	return out
}

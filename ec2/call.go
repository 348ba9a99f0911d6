package ec2

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// allowed reports whether the caller may do verb on the kind's objects
// of the project.
func (c *Call) allowed(verb auth.Verb, k *api.Kind) bool {
	return auth.Authorize(c.ID, auth.Attributes{Verb: verb, Resource: k.Plural, Project: c.Project}) == auth.Allow
}

// authorize answers UnauthorizedOperation unless the caller may do verb
// on the kind; with DryRun=true it answers DryRunOperation instead of
// going on, as AWS does.
func (c *Call) authorize(verb auth.Verb, k *api.Kind) error {
	dry, err := c.Params.Bool("DryRun", false)
	if err != nil {
		return err
	}
	if !c.allowed(verb, k) {
		return unauthorized()
	}
	if dry {
		return &Error{Status: http.StatusPreconditionFailed, Code: CodeDryRunOperation,
			Message: "Request would have succeeded, but DryRun flag is set."}
	}
	return nil
}

// list returns the project's objects of kind k that keep returns true
// for (nil keeps all), in name order.
func (c *Call) list(k *api.Kind, keep func(api.Object) bool) ([]api.Object, error) {
	if !c.allowed(auth.VerbList, k) {
		return nil, unauthorized()
	}
	project := c.Project
	if !k.Namespaced {
		project = ""
	}
	objs, _, err := c.h.cfg.Store.List(c.ctx, k, project, store.ListOptions{Filter: keep})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	slices.SortFunc(objs, func(a, b api.Object) int {
		switch {
		case a.Meta().Name < b.Meta().Name:
			return -1
		case a.Meta().Name > b.Meta().Name:
			return 1
		}
		return 0
	})
	return objs, nil
}

// listFor lists the project's objects of kind k in name order. When
// shared is true they may be shared (never modify them): from memory
// for the kinds it keeps, else from the handler's Lister when it has
// one; otherwise they are read from the store.
func (c *Call) listFor(k *api.Kind, shared bool) ([]api.Object, error) {
	if !shared {
		return c.list(k, nil)
	}
	if !c.allowed(auth.VerbList, k) {
		return nil, unauthorized()
	}
	project := c.Project
	if !k.Namespaced {
		project = ""
	}
	if objs, ok := c.h.memory.list(k, project); ok {
		return objs, nil
	}
	if c.h.cfg.Lists == nil {
		return c.list(k, nil)
	}
	objs, err := c.h.cfg.Lists.Objects(c.ctx, k, project)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	// Key order is name order within one project.
	return objs, nil
}

// find returns the project's object of kind k whose id (with prefix)
// is id, or nf. It reads the object the id index names; without a hint
// or with a wrong one it lists the project's objects of the kind (cost
// linear in their number) and indexes them.
func (c *Call) find(k *api.Kind, prefix, id string, nf *Error) (api.Object, error) {
	if !validID(prefix, id) {
		return nil, nf
	}
	objs, err := c.findAll(k, prefix, []string{id}, func(string) *Error { return nf })
	if err != nil {
		return nil, err
	}
	return objs[0], nil
}

// maxIndexedReads is the most ids findAll resolves by reading one
// object each; more are found with one list.
const maxIndexedReads = 8

// findAll resolves ids (each with prefix) to objects, answering nf for
// the first missing one; with no ids it returns all of the kind.
func (c *Call) findAll(k *api.Kind, prefix string, ids []string, nf func(id string) *Error) ([]api.Object, error) {
	if len(ids) > 0 && len(ids) <= maxIndexedReads {
		if !c.allowed(auth.VerbList, k) {
			return nil, unauthorized()
		}
		if objs, ok := c.readIndexed(k, prefix, ids); ok {
			return objs, nil
		}
	}
	objs, err := c.list(k, nil)
	if err != nil || len(ids) == 0 {
		return objs, err
	}
	byID := make(map[string]api.Object, len(objs))
	for _, o := range objs {
		oid := idOf(prefix, o)
		byID[oid] = o
		c.h.ids.put(c.Project, k, oid, o.Meta().Name)
	}
	out := make([]api.Object, 0, len(ids))
	for _, id := range ids {
		o, ok := byID[id]
		if !ok {
			return nil, nf(id)
		}
		out = append(out, o)
	}
	return out, nil
}

// readIndexed reads the objects the id index names for ids, in parallel;
// it reports false unless every id was indexed and found to be right.
func (c *Call) readIndexed(k *api.Kind, prefix string, ids []string) ([]api.Object, bool) {
	names := make([]string, len(ids))
	for i, id := range ids {
		name, ok := c.h.ids.get(c.Project, k, id)
		if !ok {
			return nil, false
		}
		names[i] = name
	}
	out := make([]api.Object, len(ids))
	read := func(i int) bool {
		o := k.New()
		if err := c.h.cfg.Store.Get(c.ctx, k, c.Project, names[i], o); err != nil || idOf(prefix, o) != ids[i] {
			c.h.ids.forget(c.Project, k, ids[i])
			return false
		}
		out[i] = o
		return true
	}
	if len(ids) == 1 {
		return out, read(0)
	}
	ok := make([]bool, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ok[i] = read(i) })
	}
	wg.Wait()
	return out, !slices.Contains(ok, false)
}

// create creates obj through the API server's admission.
func (c *Call) create(obj api.Object, idempotencyKey string) (bool, error) {
	existed, err := c.h.cfg.Objects.CreateObject(c.ctx, c.h.cfg.Store, c.ID, obj, idempotencyKey)
	if err == nil {
		m := obj.Meta()
		if prefix, ok := primaryPrefix[obj.GetKind()]; ok {
			c.h.ids.put(m.Project, obj.GetKind(), ID(prefix, m.UID), m.Name)
		}
		c.h.memory.changed(obj, false)
	}
	return existed, storeError(err)
}

// update writes obj (read at its resourceVersion) through admission.
func (c *Call) update(obj api.Object) error {
	err := c.h.cfg.Objects.UpdateObject(c.ctx, c.h.cfg.Store, c.ID, obj)
	if err == nil {
		c.h.memory.changed(obj, false)
	}
	return storeError(err)
}

// remove deletes obj through admission.
func (c *Call) remove(obj api.Object) error {
	_, err := c.h.cfg.Objects.DeleteObject(c.ctx, c.h.cfg.Store, c.ID, obj.GetKind(), obj.Meta().Project, obj.Meta().Name)
	// Marked for deletion or gone: either way memory must show it.
	c.h.memory.changed(obj, true)
	return storeError(err)
}

// storeError turns the store's errors that reach a write into the API's
// (*api.Error), as the REST API answers them.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrAlreadyExists):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Message: "an object of this name already exists"}
	case errors.Is(err, store.ErrConflict):
		return api.Conflict("the object was changed since it was read")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeIdempotencyMismatch, Message: "the ClientToken was used with a different request"}
	case errors.Is(err, store.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "not found"}
	}
	return err
}

func storeFilter(keep func(api.Object) bool) store.ListOptions {
	return store.ListOptions{Filter: keep}
}

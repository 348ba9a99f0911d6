package apitest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Create stores obj as it is, status included, as only agents and
// controllers could write it through the API. The store sets its UID,
// generation and resourceVersion on obj.
func (s *Server) Create(tb testing.TB, obj api.Object) {
	tb.Helper()
	if _, err := s.Store.Create(context.Background(), obj, store.CreateOptions{}); err != nil {
		tb.Fatalf("store %s %s: %v", obj.GetKind(), obj.Meta().Name, err)
	}
}

// Get returns the stored object, or nil if there is none.
func (s *Server) Get(tb testing.TB, kind *api.Kind, project, name string) api.Object {
	tb.Helper()
	obj := kind.New()
	err := s.Store.Get(context.Background(), kind, project, name, obj)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		tb.Fatalf("get %s %s: %v", kind.Name, name, err)
	}
	return obj
}

// Update applies fn to the stored object and writes it back, reading it
// again while others' writes come in between, as a controller would. It
// returns the object written. fn decides the generation.
func (s *Server) Update(tb testing.TB, kind *api.Kind, project, name string, fn func(api.Object)) api.Object {
	tb.Helper()
	for {
		obj := s.Get(tb, kind, project, name)
		if obj == nil {
			tb.Fatalf("update %s %s: not found", kind.Name, name)
		}
		fn(obj)
		err := s.Store.Update(context.Background(), obj)
		if err == nil {
			return obj
		}
		if !errors.Is(err, store.ErrConflict) {
			tb.Fatalf("update %s %s: %v", kind.Name, name, err)
		}
	}
}

// Remove deletes a stored object, whatever its version.
func (s *Server) Remove(tb testing.TB, kind *api.Kind, project, name string) {
	tb.Helper()
	if err := s.Store.Delete(context.Background(), kind, project, name, ""); err != nil {
		tb.Fatalf("delete %s %s: %v", kind.Name, name, err)
	}
}

// Events returns the stored events of project about the object named
// name, oldest first (by their time).
func (s *Server) Events(tb testing.TB, project, name string) []api.Event {
	tb.Helper()
	objs, _, err := s.Store.List(context.Background(), api.EventKind, project, store.ListOptions{})
	if err != nil {
		tb.Fatalf("list events: %v", err)
	}
	var out []api.Event
	for _, o := range objs {
		if e := o.(*api.Event); e.Object.Name == name {
			out = append(out, *e)
		}
	}
	slices.SortStableFunc(out, func(a, b api.Event) int { return a.Time.Compare(b.Time) })
	return out
}

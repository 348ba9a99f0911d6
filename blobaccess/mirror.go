package blobaccess

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// mirror keeps what an index needs of every object of one kind, each
// with the revision it was read at. refresh brings it to the store's
// current state, reading only the versions of the kind and the values of
// the objects that changed since the last refresh, so every refresh is one
// consistent snapshot at a cost of one keys-only read when nothing changed.
//
// A mirror is not safe for concurrent use: the Index holds its lock.
type mirror[T any] struct {
	st   store.Interface
	snap store.Snapshots // nil when the store has none: refresh lists all
	kind *api.Kind
	// of extracts what is kept of an object.
	of func(api.Object) T
	// add and remove keep the index's derived maps up to date as entries
	// come and go; a changed object is removed, then added.
	add, remove func(key string, v T)

	held map[string]entry[T]
}

type entry[T any] struct {
	rev int64
	val T
}

func newMirror[T any](st store.Interface, kind *api.Kind, of func(api.Object) T, add, remove func(string, T)) *mirror[T] {
	snap, _ := st.(store.Snapshots)
	return &mirror[T]{st: st, snap: snap, kind: kind, of: of, add: add, remove: remove, held: map[string]entry[T]{}}
}

// objectKey is the key of obj relative to its kind, as store.Version
// names it: "project/name", or "name" for cluster kinds.
func objectKey(obj api.Object) string {
	m := obj.Meta()
	if obj.GetKind().Namespaced {
		return m.Project + "/" + m.Name
	}
	return m.Name
}

// refresh brings the mirror to the store's current state.
func (m *mirror[T]) refresh(ctx context.Context) error {
	if m.snap == nil {
		return m.refreshByList(ctx)
	}
	vers, rev, err := m.snap.Versions(ctx, m.kind, "")
	if err != nil {
		return fmt.Errorf("list %s versions: %w", m.kind.Plural, err)
	}
	seen := make(map[string]bool, len(vers))
	want := map[string]bool{}
	for _, v := range vers {
		seen[v.Key] = true
		if e, ok := m.held[v.Key]; !ok || e.rev != v.Revision {
			want[v.Key] = true
		}
	}
	m.forget(seen)
	if len(want) == 0 {
		return nil
	}
	objs, err := m.snap.ReadAt(ctx, m.kind, "", rev, func(v store.Version) bool { return want[v.Key] })
	if err != nil {
		return fmt.Errorf("read changed %s: %w", m.kind.Plural, err)
	}
	for _, o := range objs {
		m.set(o)
	}
	return nil
}

// refreshByList is refresh over a store without snapshots.
func (m *mirror[T]) refreshByList(ctx context.Context) error {
	objs, _, err := m.st.List(ctx, m.kind, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list %s: %w", m.kind.Plural, err)
	}
	seen := make(map[string]bool, len(objs))
	for _, o := range objs {
		key := objectKey(o)
		seen[key] = true
		if e, ok := m.held[key]; !ok || strconv.FormatInt(e.rev, 10) != o.Meta().ResourceVersion {
			m.set(o)
		}
	}
	m.forget(seen)
	return nil
}

// set keeps obj in place of what was held under its key.
func (m *mirror[T]) set(obj api.Object) {
	key := objectKey(obj)
	rev, _ := strconv.ParseInt(obj.Meta().ResourceVersion, 10, 64)
	if old, ok := m.held[key]; ok {
		m.remove(key, old.val)
	}
	v := m.of(obj)
	m.held[key] = entry[T]{rev: rev, val: v}
	m.add(key, v)
}

// forget drops the entries whose keys are not in seen.
func (m *mirror[T]) forget(seen map[string]bool) {
	for key, e := range m.held {
		if !seen[key] {
			delete(m.held, key)
			m.remove(key, e.val)
		}
	}
}

// get returns the entry held under key.
func (m *mirror[T]) get(key string) (T, bool) {
	e, ok := m.held[key]
	return e.val, ok
}

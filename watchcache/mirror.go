package watchcache

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

const (
	// mirrorWait bounds how long a list waits for a mirror to reach the
	// store's revision before it reads the store instead.
	mirrorWait = 3 * time.Second
	// progressEvery is how often a waiting list asks the store again for
	// the progress of the kind's watch: etcd drops a request made while
	// the watch catches up.
	progressEvery = 50 * time.Millisecond
	// mirrorRest is how long lists read the store without waiting on a
	// mirror after a wait ran out, so that a store that stops answering
	// progress requests delays one list, not every list.
	mirrorRest = 30 * time.Second
)

// mirror is every object of one kind, as lists answer them, as of
// revision rev: one list's snapshot of the store, then every change the
// kind's shared watch delivered after it. A consistent list is answered
// from it without reading an object from the store: it learns the
// store's current revision, waits until the mirror has passed it (the
// watch's progress bookmarks move rev when the kind did not change) and
// takes the objects the mirror holds, as Kubernetes' consistent reads
// from its watch cache do.
//
// A mirror belongs to its kind's shared watch, which applies each event
// under its own lock, in revision order; lists read it under mu.
type mirror struct {
	kind *api.Kind

	mu sync.Mutex
	// rev is the revision the objects are at: every change up to it is in.
	rev int64
	// keys are the objects' keys ("project/name", or "name" for cluster
	// kinds), sorted as the store sorts them; objs[i] is the object of
	// keys[i], so that a list takes a range of it as it is.
	keys []string
	objs []*cachedObject
	// views are the views lists asked of this kind: each is encoded as an
	// object changes, so a list in a view finds every item encoded.
	views []*api.View
	// moved, when a list waits, is closed when rev moves or the mirror
	// is dropped.
	moved   chan struct{}
	dropped bool
	// restUntil: lists do not wait on the mirror before then (a wait ran
	// out).
	restUntil time.Time
}

// newMirror returns the mirror of kind k holding objs (sorted by key),
// the kind's objects as of revision rev.
func newMirror(k *api.Kind, objs []*cachedObject, rev int64) *mirror {
	m := &mirror{kind: k, rev: rev, keys: make([]string, len(objs)), objs: slices.Clone(objs)}
	for i, co := range objs {
		m.keys[i] = mirrorKey(k, co.obj)
	}
	return m
}

// mirrorKey is the key of obj of kind k, relative to the kind, as the
// store names it.
func mirrorKey(k *api.Kind, obj api.Object) string {
	meta := obj.Meta()
	if k.Namespaced {
		return meta.Project + "/" + meta.Name
	}
	return meta.Name
}

// apply records ev, unless the mirror is past it. It reports false when
// the mirror can no longer be kept (it grew too large) and must be
// dropped.
func (m *mirror) apply(ev *watchEvent) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.rev <= m.rev {
		return true
	}
	key := mirrorKey(m.kind, ev.obj)
	i, had := slices.BinarySearch(m.keys, key)
	switch {
	case ev.typ == api.Deleted:
		if had {
			m.keys = slices.Delete(m.keys, i, i+1)
			m.objs = slices.Delete(m.objs, i, i+1)
		}
	default:
		co := &cachedObject{rev: ev.rev, obj: ev.obj, raw: ev.raw}
		for _, v := range m.views {
			// Encoded now, off the lists' path; an object whose view
			// cannot be encoded fails the list that asks for it.
			_, _ = co.viewed(v)
		}
		if had {
			m.objs[i] = co
			break
		}
		if len(m.keys) >= maxCachedPerKind {
			return false
		}
		m.keys = slices.Insert(m.keys, i, key)
		m.objs = slices.Insert(m.objs, i, co)
	}
	m.moveLocked(ev.rev)
	return true
}

// advance notes that every change up to rev is in.
func (m *mirror) advance(rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.moveLocked(rev)
}

func (m *mirror) moveLocked(rev int64) {
	if rev <= m.rev {
		return
	}
	m.rev = rev
	if m.moved != nil {
		close(m.moved)
		m.moved = nil
	}
}

// drop ends the mirror: its shared watch stopped or skipped a change.
// Lists waiting on it read the store instead.
func (m *mirror) drop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropped = true
	if m.moved != nil {
		close(m.moved)
		m.moved = nil
	}
}

// waitFor waits until the mirror is at revision rev or later, calling
// request now and then while it waits. It reports false if the mirror
// was dropped, ctx ended or mirrorWait passed first; after mirrorWait
// passed, it reports false at once for mirrorRest unless the mirror is
// already at rev.
func (m *mirror) waitFor(ctx context.Context, rev int64, request func()) bool {
	var deadline, tick <-chan time.Time
	for {
		m.mu.Lock()
		at, dropped := m.rev, m.dropped
		if at >= rev || dropped {
			m.mu.Unlock()
			return !dropped
		}
		if deadline == nil && time.Now().Before(m.restUntil) {
			m.mu.Unlock()
			return false
		}
		if m.moved == nil {
			m.moved = make(chan struct{})
		}
		moved := m.moved
		m.mu.Unlock()
		if deadline == nil {
			t := time.NewTimer(mirrorWait)
			defer t.Stop()
			deadline = t.C
			ticker := time.NewTicker(progressEvery)
			defer ticker.Stop()
			tick = ticker.C
			request()
		}
		select {
		case <-moved:
		case <-tick:
			request()
		case <-deadline:
			m.mu.Lock()
			m.restUntil = time.Now().Add(mirrorRest)
			m.mu.Unlock()
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// objects returns the objects in project ("" for all, or for a cluster
// kind), sorted by key, and the revision they are at. With a view, it
// keeps encoding that view of every object as it changes from now on.
func (m *mirror) objects(project string, view *api.View) ([]*cachedObject, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if view != nil && !slices.Contains(m.views, view) {
		m.views = append(m.views, view)
	}
	lo, hi := 0, len(m.keys)
	if project != "" && m.kind.Namespaced {
		// The keys of a project run from "project/" to "project0" ('0'
		// follows '/').
		lo, _ = slices.BinarySearch(m.keys, project+"/")
		hi, _ = slices.BinarySearch(m.keys, project+"0")
	}
	return slices.Clone(m.objs[lo:hi]), m.rev
}

// consistent returns the objects of kind k in project as of the store's
// current revision or later, from the kind's mirror, and the revision.
// ok is false when there is no mirror ready (one is then made, for the
// next lists) or it could not reach the store's revision in time: the
// caller reads the store.
func (c *Cache) consistent(ctx context.Context, k *api.Kind, project string, view *api.View) (objs []*cachedObject, rev int64, ok bool) {
	if c.progress == nil {
		return nil, 0, false
	}
	m := c.mirrorOf(k)
	if m == nil {
		return nil, 0, false
	}
	want, err := c.progress.Revision(ctx)
	if err != nil {
		return nil, 0, false
	}
	request := func() {
		if err := c.progress.RequestProgress(ctx, k); err != nil && ctx.Err() == nil {
			c.log.Debug("request watch progress", "kind", k.Name, "err", err)
		}
	}
	if !m.waitFor(ctx, want, request) {
		c.metrics.mirrorMisses.Inc()
		return nil, 0, false
	}
	objs, rev = m.objects(project, view)
	c.metrics.mirrorLists.Inc()
	return objs, rev, true
}

// mirrorOf returns the mirror of kind k, or nil when it is not ready; it
// then starts making one, unless that is under way.
func (c *Cache) mirrorOf(k *api.Kind) *mirror {
	c.mu.Lock()
	w := c.shared[k]
	seeding := c.seeding[k]
	c.mu.Unlock()
	if w != nil {
		w.mu.Lock()
		m := w.mirror
		w.mu.Unlock()
		if m != nil {
			return m
		}
	}
	if !seeding {
		c.mu.Lock()
		if !c.seeding[k] {
			c.seeding[k] = true
			go c.seed(k)
		}
		c.mu.Unlock()
	}
	return nil
}

// seed makes the mirror of kind k from one list of the store and hands
// it to the kind's shared watch.
func (c *Cache) seed(k *api.Kind) {
	defer func() {
		c.mu.Lock()
		delete(c.seeding, k)
		c.mu.Unlock()
	}()
	objs, rev, err := c.lists.list(c.life, k, "")
	if err != nil {
		if c.life.Err() == nil {
			c.log.Warn("mirror: list failed", "kind", k.Name, "err", err)
		}
		return
	}
	if len(objs) > maxCachedPerKind {
		return
	}
	m := newMirror(k, objs, rev)
	c.mu.Lock()
	w := c.sharedLocked(k)
	c.mu.Unlock()
	if !w.attach(m) {
		c.log.Debug("mirror: the shared watch has moved past the list", "kind", k.Name, "revision", strconv.FormatInt(rev, 10))
	}
}

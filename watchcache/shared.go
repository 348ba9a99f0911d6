package watchcache

import (
	"errors"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// sharedWatch is the store watch of one kind and its subscribers.
type sharedWatch struct {
	cache *Cache
	kind  *api.Kind

	mu      sync.Mutex
	running bool
	// The ring holds every event after oldest, up to rev.
	oldest, rev int64
	ring        []*watchEvent // circular, capacity watchRingSize
	head        int           // index of the oldest event once the ring is full
	// subs are offered every event; byHost holds the subscribers with a
	// host filter (each agent watches its own instances and host network),
	// offered only the events of objects that are or were on their host,
	// so that an event costs as much with 1,000 hosts as with 3.
	subs   map[*subscriber]struct{}
	byHost map[string]map[*subscriber]struct{}
	// lastHost is the host of each object as of its last event; objects
	// with no event since the watch started are missing.
	lastHost map[string]string
	// mirror, when set, is given every event and progress bookmark.
	mirror *mirror
}

// hostOf returns the host an object is on, as the host filter of a watch
// sees it, and whether its kind has one.
func hostOf(obj api.Object) (string, bool) {
	switch o := obj.(type) {
	case *api.Instance:
		return o.Status.Host, true
	case *api.HostNetwork:
		return o.Metadata.Name, true
	}
	return "", false
}

// revision returns the revision up to which every event was offered.
func (w *sharedWatch) revision() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rev
}

func (w *sharedWatch) subscribe(sub *subscriber) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cache.life.Err() != nil {
		return false
	}
	if !w.startLocked(sub.from) {
		return false
	}
	for i := range w.ring {
		if !sub.offer(w.ring[(w.head+i)%len(w.ring)]) {
			return true // ended by overflow; the handler sends the error
		}
	}
	sub.feed = w
	if sub.host != "" {
		set := w.byHost[sub.host]
		if set == nil {
			set = map[*subscriber]struct{}{}
			w.byHost[sub.host] = set
		}
		set[sub] = struct{}{}
	} else {
		w.subs[sub] = struct{}{}
	}
	w.cache.metrics.watchSubscribers.Inc()
	return true
}

// startLocked starts the watch from revision from if it is not running.
// It reports false if it runs and its ring starts after from.
func (w *sharedWatch) startLocked(from int64) bool {
	if !w.running {
		w.running, w.oldest, w.rev, w.ring, w.head = true, from, from, nil, 0
		w.cache.metrics.sharedWatches.Inc()
		go w.run(from)
		return true
	}
	return from >= w.oldest
}

// attach makes m the watch's mirror: m is the kind as of its revision,
// and is given every change after it, from the ring first. It reports
// false if the watch cannot serve m (its ring starts after m's revision).
func (w *sharedWatch) attach(m *mirror) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cache.life.Err() != nil || !w.startLocked(m.rev) {
		return false
	}
	for i := range w.ring {
		if !m.apply(w.ring[(w.head+i)%len(w.ring)]) {
			return false
		}
	}
	m.advance(w.rev)
	if w.mirror != nil {
		w.mirror.drop()
	}
	w.mirror = m
	return true
}

// dropMirrorLocked drops the watch's mirror, if any.
func (w *sharedWatch) dropMirrorLocked() {
	if w.mirror != nil {
		w.mirror.drop()
		w.mirror = nil
	}
}

func (w *sharedWatch) unsubscribe(sub *subscriber) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(sub)
}

// removeLocked detaches sub, if attached.
func (w *sharedWatch) removeLocked(sub *subscriber) {
	set := w.subs
	if sub.host != "" {
		set = w.byHost[sub.host]
	}
	if _, ok := set[sub]; !ok {
		return
	}
	delete(set, sub)
	if sub.host != "" && len(set) == 0 {
		delete(w.byHost, sub.host)
	}
	w.cache.metrics.watchSubscribers.Dec()
}

// each calls f for every subscriber.
func (w *sharedWatch) each(f func(*subscriber)) {
	for sub := range w.subs {
		f(sub)
	}
	for _, set := range w.byHost {
		for sub := range set {
			f(sub)
		}
	}
}

// run feeds the store watch from revision from to the subscribers until
// the cache's life ends. A broken watch restarts from the last revision seen;
// a compacted one, or one that keeps breaking, ends every subscriber
// with Gone so that its client lists again.
func (w *sharedWatch) run(from int64) {
	ctx, log := w.cache.life, w.cache.log.With("kind", w.kind.Name)
	rev, failures, delay := from, 0, 100*time.Millisecond
	for {
		var ch <-chan store.Event
		var err error
		if p := w.cache.progress; p != nil {
			ch, err = p.WatchProgress(ctx, w.kind, rev)
		} else {
			ch, err = w.cache.st.Watch(ctx, w.kind, "", rev)
		}
		if err == nil {
			err = w.consume(ch)
		}
		if ctx.Err() != nil {
			w.stop(nil)
			return
		}
		w.mu.Lock()
		if w.rev > rev {
			failures, delay = 0, 100*time.Millisecond
		}
		rev = w.rev
		w.mu.Unlock()
		failures++
		if errors.Is(err, store.ErrCompacted) || failures > watchRestarts {
			log.Warn("shared watch ended; subscribers must list again", "revision", rev, "err", err)
			w.stop(gone())
			return
		}
		log.Warn("shared watch broke; restarting", "revision", rev, "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			w.stop(nil)
			return
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// consume delivers the events of one store watch. It returns the error
// that ended it, or nil when the cache's life ended.
func (w *sharedWatch) consume(ch <-chan store.Event) error {
	for ev := range ch {
		if ev.Err != nil {
			if ev.Revision != 0 {
				// One object that cannot be decoded; the watch goes on.
				w.cache.log.Error("watch: skipping an event", "kind", w.kind.Name, "revision", ev.Revision, "err", ev.Err)
				w.skip(ev.Revision)
				continue
			}
			return ev.Err
		}
		if ev.Type == api.Bookmark {
			w.advance(ev.Revision)
			continue
		}
		we, err := newWatchEvent(ev, w.cache.prepare)
		if err != nil {
			w.cache.log.Error("watch: skipping an event", "kind", w.kind.Name, "revision", ev.Revision, "err", err)
			w.skip(ev.Revision)
			continue
		}
		w.deliver(we)
	}
	if err := w.cache.life.Err(); err != nil {
		return nil
	}
	return errors.New("store watch closed")
}

// advance notes that the watch has passed revision rev.
func (w *sharedWatch) advance(rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = max(w.rev, rev)
	if w.mirror != nil {
		w.mirror.advance(rev)
	}
}

// skip notes that the watch has passed revision rev without delivering
// its change: the mirror no longer holds the kind, and is dropped.
func (w *sharedWatch) skip(rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = max(w.rev, rev)
	w.dropMirrorLocked()
}

// deliver keeps ev in the ring and offers it to every subscriber.
func (w *sharedWatch) deliver(ev *watchEvent) {
	if l := w.cache.lists; l != nil && ev.typ != api.Deleted {
		l.remember(w.kind, ev.obj, ev.raw)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = max(w.rev, ev.rev)
	if w.mirror != nil && !w.mirror.apply(ev) {
		w.dropMirrorLocked()
	}
	if len(w.ring) < watchRingSize {
		w.ring = append(w.ring, ev)
	} else {
		w.oldest = w.ring[w.head].rev
		w.ring[w.head] = ev
		w.head = (w.head + 1) % len(w.ring)
	}
	offer := func(sub *subscriber) {
		if !sub.offer(ev) {
			w.removeLocked(sub)
			w.cache.metrics.watchesFellBehind.Inc()
		}
	}
	host, indexed := hostOf(ev.obj)
	if !indexed {
		w.each(offer)
		return
	}
	prev, known := w.lastHost[ev.key]
	if ev.typ == api.Deleted {
		delete(w.lastHost, ev.key)
	} else {
		w.lastHost[ev.key] = host
	}
	if !known && ev.typ != api.Added {
		// Where the object was before is not known: a subscriber of any
		// host may hold it.
		w.each(offer)
		return
	}
	for sub := range w.subs {
		offer(sub)
	}
	for sub := range w.byHost[host] {
		offer(sub)
	}
	if known && prev != host {
		for sub := range w.byHost[prev] {
			offer(sub)
		}
	}
}

// stop ends every subscriber with e (nil when the cache's life ends: their
// streams end with it) and forgets the ring; the next subscriber starts
// the watch again.
func (w *sharedWatch) stop(e *api.Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.each(func(sub *subscriber) {
		sub.end(e)
		w.removeLocked(sub)
	})
	w.running, w.ring, w.head, w.lastHost = false, nil, 0, map[string]string{}
	w.dropMirrorLocked()
	w.cache.metrics.sharedWatches.Dec()
}

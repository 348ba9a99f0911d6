package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Watch fan-out. Every API watch of a kind shares one store watch of that
// kind across all projects, started on first use: each event is decoded
// once (by the store), encoded once, kept in a ring of recent events and
// offered to every subscriber, which filters it and queues the wire line.
//
//	store.Watch(kind, all projects)
//	   │
//	   ▼
//	sharedWatch.run ──▶ ring (last watchRingSize events)
//	   │
//	   ├─▶ subscriber.offer ─▶ queue ─▶ watch handler ─▶ HTTP stream
//	   └─▶ subscriber.offer ─▶ ...
//
// A watch from a resourceVersion the ring still covers is served from
// memory; an older one falls back to a store watch of its own. A
// subscriber whose queue is full is ended with an ERROR Gone event, so a
// slow client never blocks the others.

const (
	// watchRingSize is how many recent events a shared watch keeps for
	// watches that start from a resourceVersion.
	watchRingSize = 4096
	// subscriberQueue bounds the events waiting for one slow client.
	subscriberQueue = 4096
	// watchRestarts bounds the restarts of a broken shared watch without
	// progress before its subscribers are ended with Gone.
	watchRestarts = 5
)

// watchEvent is one store event readied for the wire: the object
// prepared for output and encoded once, shared read-only by subscribers.
type watchEvent struct {
	typ api.EventType
	obj api.Object
	key string // project/name
	rev int64
	raw []byte
	// lines caches the wire line per event type; only the event's single
	// feeder writes it.
	lines map[api.EventType][]byte
}

// newWatchEvent prepares a store event for output.
func newWatchEvent(ev store.Event) (*watchEvent, error) {
	obj := prepareOut(ev.Object)
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", obj.GetKind(), obj.Meta().Name, err)
	}
	m := obj.Meta()
	return &watchEvent{typ: ev.Type, obj: obj, key: m.Project + "/" + m.Name, rev: ev.Revision, raw: raw}, nil
}

// line returns the newline-terminated api.WatchEvent of type typ, as
// json.Encoder would write it.
func (e *watchEvent) line(typ api.EventType) []byte {
	if l, ok := e.lines[typ]; ok {
		return l
	}
	l := watchLine(typ, e.raw)
	if e.lines == nil {
		e.lines = make(map[api.EventType][]byte, 1)
	}
	e.lines[typ] = l
	return l
}

// watchLine returns the newline-terminated api.WatchEvent of type typ
// whose object is the encoded raw, as json.Encoder would write it.
func watchLine(typ api.EventType, raw []byte) []byte {
	l := make([]byte, 0, len(raw)+40)
	l = append(l, `{"type":"`...)
	l = append(l, typ...)
	l = append(l, `","object":`...)
	l = append(l, raw...)
	return append(l, "}\n"...)
}

// subscriber is one API watch stream. Its filter fields and sent set
// belong to its single feeder (a shared watch or a direct store watch);
// the queue is shared with the handler under mu.
type subscriber struct {
	project string // "" for all projects
	host    string // the host filter (instances, host networks); "" for none
	sel     api.Selector
	match   func(api.Object) bool
	listed  bool            // the stream began with a list
	from    int64           // events up to this revision are already reflected
	sent    map[string]bool // objects the client holds

	mu      sync.Mutex
	queue   [][]byte
	lastRev int64
	ended   bool
	err     *api.Error
	notify  chan struct{} // capacity 1: the queue changed
	// feed is the shared watch the subscriber is attached to (nil for a
	// store watch of its own); set before the subscriber is shared.
	feed *sharedWatch
}

func newSubscriber(project, host string, sel api.Selector, match func(api.Object) bool, listed bool, from int64, sent map[string]bool) *subscriber {
	return &subscriber{project: project, host: host, sel: sel, match: match, listed: listed, from: from, sent: sent,
		lastRev: from, notify: make(chan struct{}, 1)}
}

// offer queues what the client must see of ev. It returns false when the
// subscriber has ended (its queue overflowed or it was ended before).
func (s *subscriber) offer(ev *watchEvent) bool {
	if ev.rev <= s.from {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.ended
	}
	visible := (s.project == "" || ev.obj.Meta().Project == s.project) &&
		s.match(ev.obj) && s.sel.Matches(ev.obj.Meta().Labels)
	typ, ok := translate(ev.typ, s.sent, ev.key, s.listed, visible)
	var line []byte
	if ok {
		line = ev.line(typ)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if ev.rev > s.lastRev {
		s.lastRev = ev.rev
	}
	if !ok {
		return true
	}
	if len(s.queue) >= subscriberQueue {
		s.endLocked(fellBehind())
		return false
	}
	s.queue = append(s.queue, line)
	s.signal()
	return true
}

// end stops the subscriber with an ERROR event carrying e.
func (s *subscriber) end(e *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(e)
}

func (s *subscriber) endLocked(e *api.Error) {
	if !s.ended {
		s.ended, s.err = true, e
		s.signal()
	}
}

func (s *subscriber) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take returns the queued lines, the revision they bring the client to,
// whether the subscriber has ended and the error to send if so (nil when
// the server is closing).
func (s *subscriber) take() (lines [][]byte, rev int64, ended bool, err *api.Error) {
	// A shared watch offers a subscriber with a host filter only the
	// events that can concern it; every event up to the shared watch's
	// revision has been offered, so the client is at least there. Read
	// before the queue is taken, as events are queued before the revision
	// moves past them.
	var floor int64
	if s.feed != nil {
		floor = s.feed.revision()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lines, s.queue = s.queue, nil
	return lines, max(s.lastRev, floor), s.ended, s.err
}

// fellBehind is the error of a subscriber whose queue overflowed.
func fellBehind() *api.Error {
	return &api.Error{Status: http.StatusGone, Code: api.CodeGone, Message: "the watch fell too far behind",
		Hint: "list again and watch from the list's resourceVersion"}
}

// watchHub owns the shared watches of a server, one per kind.
type watchHub struct {
	st      store.Interface
	log     *slog.Logger
	life    context.Context
	metrics *metrics

	mu     sync.Mutex
	shared map[*api.Kind]*sharedWatch
	// lists, when set, is given every object the shared watches see, so
	// that a list after changes finds them encoded already.
	lists *listCache
}

func newWatchHub(st store.Interface, log *slog.Logger, life context.Context, m *metrics) *watchHub {
	return &watchHub{st: st, log: log, life: life, metrics: m, shared: map[*api.Kind]*sharedWatch{}}
}

// subscribe attaches sub to the shared watch of k, starting it from
// sub.from if it is not running. It returns false if the shared watch
// cannot serve sub (its ring starts after sub.from); the caller then
// watches the store directly.
func (h *watchHub) subscribe(k *api.Kind, sub *subscriber) bool {
	h.mu.Lock()
	w := h.shared[k]
	if w == nil {
		w = &sharedWatch{hub: h, kind: k, subs: map[*subscriber]struct{}{},
			byHost: map[string]map[*subscriber]struct{}{}, lastHost: map[string]string{}}
		h.shared[k] = w
	}
	h.mu.Unlock()
	return w.subscribe(sub)
}

// unsubscribe detaches sub from the shared watch of k, if attached.
func (h *watchHub) unsubscribe(k *api.Kind, sub *subscriber) {
	h.mu.Lock()
	w := h.shared[k]
	h.mu.Unlock()
	if w != nil {
		w.unsubscribe(sub)
	}
}

// sharedWatch is the store watch of one kind and its subscribers.
type sharedWatch struct {
	hub  *watchHub
	kind *api.Kind

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
	if w.hub.life.Err() != nil {
		return false
	}
	if !w.running {
		w.running, w.oldest, w.rev, w.ring, w.head = true, sub.from, sub.from, nil, 0
		w.hub.metrics.sharedWatches.Inc()
		go w.run(sub.from)
	} else if sub.from < w.oldest {
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
	w.hub.metrics.watchSubscribers.Inc()
	return true
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
	w.hub.metrics.watchSubscribers.Dec()
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
// the server closes. A broken watch restarts from the last revision seen;
// a compacted one, or one that keeps breaking, ends every subscriber
// with Gone so that its client lists again.
func (w *sharedWatch) run(from int64) {
	ctx, log := w.hub.life, w.hub.log.With("kind", w.kind.Name)
	rev, failures, delay := from, 0, 100*time.Millisecond
	for {
		ch, err := w.hub.st.Watch(ctx, w.kind, "", rev)
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
// that ended it, or nil when the server closed.
func (w *sharedWatch) consume(ch <-chan store.Event) error {
	for ev := range ch {
		if ev.Err != nil {
			if ev.Revision != 0 {
				// One object that cannot be decoded; the watch goes on.
				w.hub.log.Error("watch: skipping an event", "kind", w.kind.Name, "revision", ev.Revision, "err", ev.Err)
				w.advance(ev.Revision)
				continue
			}
			return ev.Err
		}
		we, err := newWatchEvent(ev)
		if err != nil {
			w.hub.log.Error("watch: skipping an event", "kind", w.kind.Name, "revision", ev.Revision, "err", err)
			w.advance(ev.Revision)
			continue
		}
		w.deliver(we)
	}
	if err := w.hub.life.Err(); err != nil {
		return nil
	}
	return errors.New("store watch closed")
}

// advance notes that the watch has passed revision rev.
func (w *sharedWatch) advance(rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = max(w.rev, rev)
}

// deliver keeps ev in the ring and offers it to every subscriber.
func (w *sharedWatch) deliver(ev *watchEvent) {
	if l := w.hub.lists; l != nil && ev.typ != api.Deleted {
		l.remember(w.kind, ev.obj, ev.raw)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = max(w.rev, ev.rev)
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
			w.hub.metrics.watchesFellBehind.Inc()
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

// stop ends every subscriber with e (nil when the server closes: their
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
	w.hub.metrics.sharedWatches.Dec()
}

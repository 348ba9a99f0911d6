package watchcache

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

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

// newWatchEvent readies a store event for output with prepare.
func newWatchEvent(ev store.Event, prepare func(api.Object) api.Object) (*watchEvent, error) {
	obj := prepare(ev.Object)
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
// the cache's life is ending).
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

// gone is the error of a subscriber whose shared watch was compacted.
func gone() *api.Error {
	return &api.Error{Status: http.StatusGone, Code: api.CodeGone, Message: "the resourceVersion was compacted",
		Hint: "list again and watch from the list's resourceVersion"}
}

// fellBehind is the error of a subscriber whose queue overflowed.
func fellBehind() *api.Error {
	return &api.Error{Status: http.StatusGone, Code: api.CodeGone, Message: "the watch fell too far behind",
		Hint: "list again and watch from the list's resourceVersion"}
}

package watchcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Query is what one watch stream asks for.
type Query struct {
	Kind *api.Kind
	// Project limits the stream to one project; "" for all.
	Project string
	// Host is the stream's host filter (instances, host networks); ""
	// for none. Match must apply it too: Host only picks which events
	// the stream is offered.
	Host string
	// Selector filters objects by label.
	Selector api.Selector
	// Match reports whether the caller may see an object and it passes
	// the stream's other filters.
	Match func(api.Object) bool
	// From is the resourceVersion the stream starts after; 0 starts with
	// an ADDED event for every object the caller may see.
	From int64
	// Bookmark is how long the stream may stay idle before a BOOKMARK.
	Bookmark time.Duration
}

// Watch streams changes of a kind to w as newline-delimited
// api.WatchEvent lines, until ctx ends, the client leaves or the stream
// fails. Without a resourceVersion (q.From 0) it first sends ADDED for
// every object the caller may see. An object that starts matching the
// filter is sent as ADDED, one that stops matching as DELETED, so the
// client's view stays exact; a BOOKMARK goes out whenever the stream was
// idle for q.Bookmark. Events come from the kind's shared watch, or from
// a store watch of the stream's own when the shared one cannot serve its
// resourceVersion. It returns an error only before it answered.
func (c *Cache) Watch(ctx context.Context, w http.ResponseWriter, q Query) error {
	k, project, fromRev := q.Kind, q.Project, q.From
	listed := fromRev == 0
	var initial [][]byte // ADDED lines
	sent := map[string]bool{}
	if listed {
		var err error
		if initial, fromRev, err = c.list(ctx, k, project, q.Selector, q.Match, sent); err != nil {
			return err
		}
	}
	c.metrics.watches.Inc()
	defer c.metrics.watches.Dec()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(typ api.EventType, obj any) bool {
		return enc.Encode(api.WatchEvent[any]{Type: typ, Object: obj}) == nil
	}
	for _, l := range initial {
		if _, err := w.Write(l); err != nil {
			return nil
		}
	}
	if rc.Flush() != nil {
		return nil
	}
	// Subscribe only now, so that a long initial list does not fill the
	// queue; the ring (or a store watch of our own) has what happened
	// since the list.
	sub := newSubscriber(project, q.Host, q.Selector, q.Match, listed, fromRev, sent)
	if c.subscribe(k, sub) {
		defer c.unsubscribe(k, sub)
	} else {
		ch, err := c.st.Watch(ctx, k, project, fromRev)
		if err != nil {
			c.log.Error("watch failed", "kind", k.Name, "project", project, "err", err)
			send(api.ErrorEvent, api.ErrorBody{Error: c.errorOf(err)})
			return nil
		}
		go c.feedDirect(k, project, ch, sub)
	}
	// write sends the queued lines, then a bookmark at rev if asked, and
	// the ending error if there is one. It reports whether to go on.
	write := func(bookmark bool) bool {
		lines, rev, ended, e := sub.take()
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				return false
			}
		}
		if bookmark && !ended && !send(api.Bookmark, map[string]any{"kind": k.Name,
			"metadata": api.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}}) {
			return false
		}
		if e != nil {
			send(api.ErrorEvent, api.ErrorBody{Error: e})
		}
		return rc.Flush() == nil && !ended
	}
	bookmark := time.NewTicker(q.Bookmark)
	defer bookmark.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-bookmark.C:
			if !write(true) {
				return nil
			}
		case <-sub.notify:
			if !write(false) {
				return nil
			}
			bookmark.Reset(q.Bookmark)
		}
	}
}

// list lists what a watch starts with: the ADDED lines of the
// objects the caller may see, each noted in sent, and the revision read.
// Full lists come from the list cache when the store has one.
func (c *Cache) list(ctx context.Context, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool, sent map[string]bool) ([][]byte, int64, error) {
	var lines [][]byte
	add := func(obj api.Object, raw []byte) {
		m := obj.Meta()
		sent[m.Project+"/"+m.Name] = true
		lines = append(lines, watchLine(api.Added, raw))
	}
	if c.lists != nil {
		all, rev, err := c.snapshot(ctx, k, project, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", k.Plural, err)
		}
		for _, co := range all {
			if sel.Matches(co.obj.Meta().Labels) && match(co.obj) {
				add(co.obj, co.raw)
			}
		}
		return lines, rev, nil
	}
	objs, meta, err := c.st.List(ctx, k, project, store.ListOptions{Selector: sel, Filter: match})
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	rev, err := strconv.ParseInt(meta.ResourceVersion, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: resourceVersion %q: %w", k.Plural, meta.ResourceVersion, err)
	}
	encoded, err := encodeObjects(objs, c.prepare)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	for _, co := range encoded {
		add(co.obj, co.raw)
	}
	return lines, rev, nil
}

// feedDirect feeds a store watch of the stream's own to sub, for a
// resourceVersion older than the shared watch keeps. It ends when the
// store watch does (the stream's context ends it).
func (c *Cache) feedDirect(k *api.Kind, project string, ch <-chan store.Event, sub *subscriber) {
	defer func() {
		for range ch { // let the store's goroutine finish
		}
	}()
	for ev := range ch {
		if ev.Err != nil {
			if !errors.Is(ev.Err, store.ErrCompacted) {
				c.log.Error("watch failed", "kind", k.Name, "project", project, "err", ev.Err)
			}
			sub.end(c.errorOf(ev.Err))
			return
		}
		we, err := newWatchEvent(ev, c.prepare)
		if err != nil {
			c.log.Error("watch failed", "kind", k.Name, "project", project, "err", err)
			sub.end(c.errorOf(err))
			return
		}
		if !sub.offer(we) {
			return
		}
	}
}

// translate decides what a watcher sees of a store event of type typ,
// given whether the object is visible to it now and which objects it was
// sent. For a watch resumed from a resourceVersion (listed false) the sent
// set starts empty, so changes of visible objects keep their type.
func translate(typ api.EventType, sent map[string]bool, key string, listed, visible bool) (api.EventType, bool) {
	had := sent[key]
	switch {
	case typ == api.Deleted:
		delete(sent, key)
		return api.Deleted, had || (!listed && visible)
	case visible:
		sent[key] = true
		if !had && listed {
			return api.Added, true
		}
		return typ, true
	case had:
		delete(sent, key)
		return api.Deleted, true
	}
	return "", false
}

package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// watch streams changes of a kind as newline-delimited api.WatchEvent
// lines. Without a resourceVersion it first sends ADDED for every object
// the caller may see. An object that starts matching the filter is sent as
// ADDED, one that stops matching as DELETED, so the client's view stays
// exact; a BOOKMARK goes out whenever the stream was idle for the bookmark
// interval. Events come from the kind's shared watch (watchcache.go), or
// from a store watch of the stream's own when the shared one cannot serve
// its resourceVersion.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *api.Kind, project, host string, sel api.Selector, match func(api.Object) bool) error {
	var fromRev int64
	if v := r.URL.Query().Get("resourceVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return api.Invalid("resourceVersion", "use the resourceVersion of a list", "resourceVersion %q is not valid", truncate(v, 40))
		}
		fromRev = n
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()

	listed := fromRev == 0
	var initial [][]byte // ADDED lines
	sent := map[string]bool{}
	if listed {
		var err error
		if initial, fromRev, err = s.watchList(ctx, k, project, sel, match, sent); err != nil {
			return err
		}
	}
	s.metrics.watches.Inc()
	defer s.metrics.watches.Dec()

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
	sub := newSubscriber(project, host, sel, match, listed, fromRev, sent)
	if s.watches.subscribe(k, sub) {
		defer s.watches.unsubscribe(k, sub)
	} else {
		ch, err := s.store.Watch(ctx, k, project, fromRev)
		if err != nil {
			s.log.Error("watch failed", "kind", k.Name, "project", project, "err", err)
			send(api.ErrorEvent, api.ErrorBody{Error: toAPIError(err)})
			return nil
		}
		go s.feedDirect(k, project, ch, sub)
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
	bookmark := time.NewTicker(s.cfg.BookmarkInterval)
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
			bookmark.Reset(s.cfg.BookmarkInterval)
		}
	}
}

// watchList lists what a watch starts with: the ADDED lines of the
// objects the caller may see, each noted in sent, and the revision read.
// Full lists come from the list cache when the store has one.
func (s *Server) watchList(ctx context.Context, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool, sent map[string]bool) ([][]byte, int64, error) {
	var lines [][]byte
	add := func(obj api.Object, raw []byte) {
		m := obj.Meta()
		sent[m.Project+"/"+m.Name] = true
		lines = append(lines, watchLine(api.Added, raw))
	}
	if s.lists != nil {
		all, rev, err := s.lists.list(ctx, k, project)
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
	objs, meta, err := s.store.List(ctx, k, project, store.ListOptions{Selector: sel, Filter: match})
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	rev, err := strconv.ParseInt(meta.ResourceVersion, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: resourceVersion %q: %w", k.Plural, meta.ResourceVersion, err)
	}
	encoded, err := encodeObjects(objs)
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
func (s *Server) feedDirect(k *api.Kind, project string, ch <-chan store.Event, sub *subscriber) {
	defer func() {
		for range ch { // let the store's goroutine finish
		}
	}()
	for ev := range ch {
		if ev.Err != nil {
			if !errors.Is(ev.Err, store.ErrCompacted) {
				s.log.Error("watch failed", "kind", k.Name, "project", project, "err", ev.Err)
			}
			sub.end(toAPIError(ev.Err))
			return
		}
		we, err := newWatchEvent(ev)
		if err != nil {
			s.log.Error("watch failed", "kind", k.Name, "project", project, "err", err)
			sub.end(toAPIError(err))
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

// eventName returns a unique, time-ordered name for an Event.
func eventName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(b))
}

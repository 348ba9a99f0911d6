package apiserver

import (
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
// interval.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool) error {
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
	var initial []api.Object
	if listed {
		objs, meta, err := s.store.List(ctx, k, project, store.ListOptions{Selector: sel, Filter: match})
		if err != nil {
			return fmt.Errorf("list %s: %w", k.Plural, err)
		}
		if fromRev, err = strconv.ParseInt(meta.ResourceVersion, 10, 64); err != nil {
			return fmt.Errorf("list %s: resourceVersion %q: %w", k.Plural, meta.ResourceVersion, err)
		}
		initial = objs
	}
	ch, err := s.store.Watch(ctx, k, project, fromRev)
	if err != nil {
		return fmt.Errorf("watch %s: %w", k.Plural, err)
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
		if err := enc.Encode(api.WatchEvent[any]{Type: typ, Object: obj}); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	key := func(o api.Object) string { return o.Meta().Project + "/" + o.Meta().Name }
	sent := map[string]bool{}
	for _, o := range initial {
		sent[key(o)] = true
		if !send(api.Added, prepareOut(o)) {
			return nil
		}
	}
	if len(initial) == 0 {
		rc.Flush()
	}
	lastRev := fromRev
	bookmark := time.NewTicker(s.cfg.BookmarkInterval)
	defer bookmark.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-bookmark.C:
			if !send(api.Bookmark, map[string]any{"kind": k.Name,
				"metadata": api.ListMeta{ResourceVersion: strconv.FormatInt(lastRev, 10)}}) {
				return nil
			}
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if ev.Err != nil {
				e := toAPIError(ev.Err)
				if !errors.Is(ev.Err, store.ErrCompacted) {
					s.log.Error("watch failed", "kind", k.Name, "project", project, "err", ev.Err)
				}
				send(api.ErrorEvent, api.ErrorBody{Error: e})
				return nil
			}
			if ev.Revision > lastRev {
				lastRev = ev.Revision
			}
			typ, ok := translate(ev, sent, key(ev.Object), listed, match(ev.Object) && sel.Matches(ev.Object.Meta().Labels))
			if ok && !send(typ, prepareOut(ev.Object)) {
				return nil
			}
			bookmark.Reset(s.cfg.BookmarkInterval)
		}
	}
}

// translate decides what a watcher sees of a store event, given whether
// the object is visible to it now and which objects it was sent. For a
// watch resumed from a resourceVersion (listed false) the sent set starts
// empty, so changes of visible objects keep their type.
func translate(ev store.Event, sent map[string]bool, key string, listed, visible bool) (api.EventType, bool) {
	had := sent[key]
	switch {
	case ev.Type == api.Deleted:
		delete(sent, key)
		return api.Deleted, had || (!listed && visible)
	case visible:
		sent[key] = true
		if !had && listed {
			return api.Added, true
		}
		return ev.Type, true
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

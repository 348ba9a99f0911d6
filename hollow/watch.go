package hollow

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// maxConflicts bounds the re-reads of one instance after conflicting
// status writes before the host gives up and lists again.
const maxConflicts = 5

// watchLoop follows the instances placed on the host and reports their
// phases. The first watch, and every watch after a failure, starts without
// a resourceVersion, so the server sends every placed instance first: the
// host converges from the whole state (level-triggered), never from a
// single event. A stream the server ended cleanly is resumed from the
// last version seen.
func (h *host) watchLoop(ctx context.Context) {
	rv := ""
	delay := firstDelay
	for ctx.Err() == nil {
		cl, token := h.client()
		if rv == "" {
			clear(h.known)
		}
		received := false
		err := client.Watch(ctx, cl, api.InstanceKind, "", client.WatchOptions{
			ListOptions:     client.ListOptions{Host: h.name},
			ResourceVersion: rv,
		}, func(ev api.WatchEvent[api.Instance]) error {
			received = true
			if err := h.handle(ctx, ev); err != nil {
				return err
			}
			if v := ev.Object.Metadata.ResourceVersion; v != "" {
				rv = v
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			continue // the server ended the stream; resume from rv
		case received:
			delay = firstDelay
		}
		rv = ""
		if api.StatusOf(err) == http.StatusGone {
			continue
		}
		h.f.log.Warn("hollow host watch broke; watching again", "host", h.name, "err", err, "in", delay)
		if api.StatusOf(err) == http.StatusUnauthorized {
			h.rejoin(ctx, token)
		}
		if !sleep(ctx, jitter(delay)) {
			return
		}
		delay = min(2*delay, maxDelay)
	}
}

// handle takes one watch event. An error makes the caller watch again
// from scratch.
func (h *host) handle(ctx context.Context, ev api.WatchEvent[api.Instance]) error {
	in := &ev.Object
	key := in.Metadata.Project + "/" + in.Metadata.Name
	switch ev.Type {
	case api.Deleted:
		delete(h.known, key)
		return nil
	case api.Added, api.Modified:
	default:
		return nil
	}
	if old := h.known[key]; old != nil && old.Metadata.UID == in.Metadata.UID &&
		version(old) >= version(in) {
		return nil // an echo of what the host wrote itself
	}
	return h.reconcile(ctx, in)
}

// reconcile writes the steps decide asks for until there are none. After
// a conflict it reads the instance again and decides afresh.
func (h *host) reconcile(ctx context.Context, in *api.Instance) error {
	key := in.Metadata.Project + "/" + in.Metadata.Name
	conflicts := 0
	for {
		next, changed := decide(in, h.name, time.Now())
		if !changed {
			h.known[key] = in
			return nil
		}
		out := *in
		out.Status = next
		cl, _ := h.client()
		err := h.f.call(ctx, func(ctx context.Context) error { return cl.UpdateStatus(ctx, &out) })
		if err == nil {
			in = &out
			continue
		}
		if api.IsNotFound(err) {
			delete(h.known, key) // deleted or moved away; the watch says so next
			return nil
		}
		if !api.IsConflict(err) || conflicts >= maxConflicts {
			return fmt.Errorf("report %s as %s: %w", key, next.Phase, err)
		}
		conflicts++
		var fresh api.Instance
		err = h.f.call(ctx, func(ctx context.Context) error {
			return cl.Get(ctx, api.InstanceKind, in.Metadata.Project, in.Metadata.Name, &fresh)
		})
		if api.IsNotFound(err) {
			delete(h.known, key)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s again after a conflict: %w", key, err)
		}
		in = &fresh
	}
}

// version returns an object's resourceVersion as a number (0 when it has
// none or it is not a number).
func version(in *api.Instance) int64 {
	n, err := strconv.ParseInt(in.Metadata.ResourceVersion, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

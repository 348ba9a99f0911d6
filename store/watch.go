package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// watchBuffer is how many events may wait for a slow reader.
const watchBuffer = 100

// Watch implements Interface.
func (s *etcdStore) Watch(ctx context.Context, kind *api.Kind, project string, fromRev int64) (<-chan Event, error) {
	return s.watch(clientv3.WithRequireLeader(ctx), ctx, kind, project, fromRev, false)
}

// watch is Watch whose etcd watch runs on wctx (derived from ctx; its
// metadata picks the gRPC stream the watch shares). With progress, the
// stream's progress notifications come out as api.Bookmark events.
func (s *etcdStore) watch(wctx, ctx context.Context, kind *api.Kind, project string, fromRev int64, progress bool) (<-chan Event, error) {
	if !kind.Namespaced {
		project = ""
	}
	if project != "" && !validSegment(project) {
		return nil, fmt.Errorf("store: watch %s: invalid project %q", kind.Name, project)
	}
	if fromRev < 0 {
		return nil, fmt.Errorf("store: watch %s: negative revision %d", kind.Name, fromRev)
	}
	prefix := kindPrefix(kind, project)
	wctx, cancel := context.WithCancel(wctx)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev+1))
	}
	wch := s.cli.Watch(wctx, prefix, opts...)
	out := make(chan Event, watchBuffer)
	go func() {
		defer close(out)
		defer cancel()
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(Event{Err: fmt.Errorf("store: watch %s from revision %d, compacted at %d: %w",
					kind.Name, fromRev, resp.CompactRevision, ErrCompacted)})
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					send(Event{Err: watchErr(kind, err)})
				}
				return
			}
			if progress && resp.IsProgressNotify() {
				if !send(Event{Type: api.Bookmark, Revision: resp.Header.Revision}) {
					return
				}
				continue
			}
			for _, e := range resp.Events {
				ev, ok, err := decodeEvent(kind, prefix, e)
				if err != nil {
					ev = Event{Err: err, Revision: e.Kv.ModRevision}
				}
				if (ok || err != nil) && !send(ev) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(Event{Err: fmt.Errorf("store: watch %s ended: %w", kind.Name, clientCtxErr(s.cli))})
		}
	}()
	return out, nil
}

// watchErr wraps an error of an etcd watch.
func watchErr(kind *api.Kind, err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("store: watch %s: %w", kind.Name, ErrCompacted)
	}
	return fmt.Errorf("store: watch %s: %w", kind.Name, err)
}

// clientCtxErr explains why a watch channel closed without its context
// ending: usually the client was closed.
func clientCtxErr(cli *clientv3.Client) error {
	if err := cli.Ctx().Err(); err != nil {
		return err
	}
	return fmt.Errorf("watch channel closed")
}

// decodeEvent turns an etcd event into a store event. ok is false for
// keys that are not objects of kind directly under prefix.
func decodeEvent(kind *api.Kind, prefix string, e *clientv3.Event) (Event, bool, error) {
	rest := strings.TrimPrefix(string(e.Kv.Key), prefix)
	if !strings.Contains(rest, "/") && kind.Namespaced && prefix == kindPrefix(kind, "") {
		return Event{}, false, nil // not project/name
	}
	switch e.Type {
	case mvccpb.PUT:
		obj, err := decodeNew(kind, e.Kv)
		if err != nil {
			return Event{}, false, err
		}
		typ := api.Modified
		if e.IsCreate() {
			typ = api.Added
		}
		return Event{Type: typ, Object: obj, Revision: e.Kv.ModRevision}, true, nil
	case mvccpb.DELETE:
		var obj api.Object
		if e.PrevKv != nil {
			o, err := decodeNew(kind, e.PrevKv)
			if err != nil {
				return Event{}, false, err
			}
			obj = o
		} else {
			// The previous value is gone (compacted); name what we know.
			obj = kind.New()
			if kind.Namespaced {
				obj.Meta().Project, obj.Meta().Name, _ = strings.Cut(rest, "/")
			} else {
				obj.Meta().Name = rest
			}
		}
		obj.Meta().ResourceVersion = fmt.Sprint(e.Kv.ModRevision)
		return Event{Type: api.Deleted, Object: obj, Revision: e.Kv.ModRevision}, true, nil
	}
	return Event{}, false, nil
}

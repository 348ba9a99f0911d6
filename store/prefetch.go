package store

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// Ref names an object to read.
type Ref struct {
	Kind          *api.Kind
	Project, Name string
}

// prefetcher is a store that can read several objects at once.
type prefetcher interface {
	prefetch(ctx context.Context, refs []Ref) (map[string]*mvccpb.KeyValue, error)
}

// prefetchKey is the context key of a request's prefetched objects.
type prefetchKey struct{}

// Prefetch reads the objects refs name from st in one transaction (one
// revision, one round trip) and returns a context under which st's Get of
// any of them is answered from that read, found or not, without asking
// etcd again. It is for one request that reads several objects before it
// writes, such as an instance create's admission: the reads are the ones
// the request would make, at one revision instead of several, and end with
// the request's context; nothing is cached beyond it. Refs with invalid
// names are left out (their Get reports the error), and when the read
// fails, or st reads objects one at a time, ctx is returned unchanged.
func Prefetch(ctx context.Context, st Interface, refs []Ref) context.Context {
	p, ok := st.(prefetcher)
	if !ok || len(refs) == 0 {
		return ctx
	}
	kvs, err := p.prefetch(ctx, refs)
	if err != nil || len(kvs) == 0 {
		return ctx
	}
	if prev, ok := ctx.Value(prefetchKey{}).(map[string]*mvccpb.KeyValue); ok {
		for k, v := range prev {
			if _, have := kvs[k]; !have {
				kvs[k] = v
			}
		}
	}
	return context.WithValue(ctx, prefetchKey{}, kvs)
}

// prefetched returns what Prefetch read at key under ctx: ok is false when
// key was not read, kv nil when it was read and absent.
func prefetched(ctx context.Context, key string) (kv *mvccpb.KeyValue, ok bool) {
	kvs, _ := ctx.Value(prefetchKey{}).(map[string]*mvccpb.KeyValue)
	kv, ok = kvs[key]
	return kv, ok
}

// prefetch implements prefetcher.
func (s *etcdStore) prefetch(ctx context.Context, refs []Ref) (map[string]*mvccpb.KeyValue, error) {
	keys := make([]string, 0, len(refs))
	ops := make([]clientv3.Op, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	for _, r := range refs {
		project := r.Project
		if !r.Kind.Namespaced {
			project = ""
		}
		if checkName(r.Kind, project, r.Name) != nil {
			continue
		}
		key := objectKey(r.Kind, project, r.Name)
		if seen[key] {
			continue
		}
		seen[key] = true
		keys = append(keys, key)
		ops = append(ops, clientv3.OpGet(key))
	}
	if len(ops) == 0 {
		return nil, nil
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	kvs := make(map[string]*mvccpb.KeyValue, len(keys))
	for i, key := range keys {
		var kv *mvccpb.KeyValue
		if r := resp.Responses[i].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			kv = r.Kvs[0]
		}
		kvs[key] = kv
	}
	return kvs, nil
}

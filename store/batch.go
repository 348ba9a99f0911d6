package store

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// MaxBatch is the most objects UpdateBatch writes in one transaction
// (etcd's default --max-txn-ops is 128; each object takes one comparison
// and one put).
const MaxBatch = 100

// batchRounds bounds the transactions of one UpdateBatch: each round drops
// at least one object (the conflicting ones), so a batch of n objects
// needs at most n+1 rounds; in practice one or two.
const batchRounds = 4

// UpdateBatch implements Interface: one transaction compares every
// object's stored version (and the guards) and writes them all. When it
// fails, the Else branch tells which objects changed or went; those get
// their error and the rest are tried again.
func (s *etcdStore) UpdateBatch(ctx context.Context, objs []api.Object) []error {
	errs := make([]error, len(objs))
	if len(objs) > MaxBatch {
		for i := range errs {
			errs[i] = fmt.Errorf("store: update batch of %d objects, at most %d", len(objs), MaxBatch)
		}
		return errs
	}
	type item struct {
		at  int
		key string
		rv  int64
		val string
	}
	items := make([]item, 0, len(objs))
	for i, obj := range objs {
		kind, m := obj.GetKind(), obj.Meta()
		project := projectOf(obj)
		if err := checkName(kind, project, m.Name); err != nil {
			errs[i] = err
			continue
		}
		rv, err := parseRV(m.ResourceVersion)
		if err != nil {
			errs[i] = fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
			continue
		}
		val, err := encode(obj)
		if err != nil {
			errs[i] = err
			continue
		}
		items = append(items, item{at: i, key: objectKey(kind, project, m.Name), rv: rv, val: string(val)})
	}
	for round := 0; len(items) > 0; round++ {
		if round == batchRounds {
			for _, it := range items {
				errs[it.at] = fmt.Errorf("store: update %s: the batch kept conflicting: %w", it.key, ErrConflict)
			}
			break
		}
		cmps := make([]clientv3.Cmp, 0, len(items)+len(s.guards))
		puts := make([]clientv3.Op, 0, len(items))
		gets := make([]clientv3.Op, 0, len(items)+len(s.guards))
		for _, it := range items {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(it.key), "=", it.rv))
			puts = append(puts, clientv3.OpPut(it.key, it.val, clientv3.WithIgnoreLease()))
			gets = append(gets, clientv3.OpGet(it.key, clientv3.WithKeysOnly()))
		}
		resp, err := s.cli.Txn(ctx).
			If(append(cmps, s.guardCmps()...)...).
			Then(puts...).
			Else(append(gets, s.guardGets()...)...).
			Commit()
		if err != nil {
			for _, it := range items {
				errs[it.at] = fmt.Errorf("store: update %s: %w", it.key, err)
			}
			break
		}
		if resp.Succeeded {
			rv := strconv.FormatInt(resp.Header.Revision, 10)
			for _, it := range items {
				objs[it.at].Meta().ResourceVersion = rv
			}
			break
		}
		if err := s.guardFailed(resp); err != nil {
			for _, it := range items {
				errs[it.at] = err
			}
			break
		}
		// Keep the objects still at the version their caller read.
		left := items[:0]
		for i, it := range items {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			switch {
			case len(kvs) == 0:
				errs[it.at] = fmt.Errorf("store: update %s: %w", it.key, ErrNotFound)
			case kvs[0].ModRevision != it.rv:
				errs[it.at] = fmt.Errorf("store: update %s at version %d, stored %d: %w", it.key, it.rv, kvs[0].ModRevision, ErrConflict)
			default:
				left = append(left, it)
			}
		}
		items = left
	}
	return errs
}

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

// Version names one stored object by its key, relative to its kind
// ("project/name", or "name" for cluster kinds), and the revision it was
// last written at (its resourceVersion).
type Version struct {
	Key      string
	Revision int64
}

// Snapshots lists a kind in two steps, for readers that keep decoded
// objects from one list to the next (the API server's list cache): first
// the versions alone, then the values of just the objects the reader does
// not hold yet. Both steps read at one revision, so what the reader
// assembles is one consistent snapshot, as List returns.
type Snapshots interface {
	// Versions lists the versions of the objects of a kind in project (all
	// projects for "" or a cluster kind), sorted by key, and the revision
	// they were read at.
	Versions(ctx context.Context, kind *api.Kind, project string) ([]Version, int64, error)
	// ReadAt decodes, at revision rev, the objects of a kind in project
	// whose versions want selects, in key order.
	ReadAt(ctx context.Context, kind *api.Kind, project string, rev int64, want func(Version) bool) ([]api.Object, error)
}

// Versions implements Snapshots.
func (s *etcdStore) Versions(ctx context.Context, kind *api.Kind, project string) ([]Version, int64, error) {
	var out []Version
	var rev int64
	err := s.scan(ctx, kind, project, &rev, true, func(resp *clientv3.GetResponse) error {
		for _, kv := range resp.Kvs {
			out = append(out, versionOf(kind, kv))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// ReadAt implements Snapshots.
func (s *etcdStore) ReadAt(ctx context.Context, kind *api.Kind, project string, rev int64, want func(Version) bool) ([]api.Object, error) {
	if rev <= 0 {
		return nil, fmt.Errorf("store: read %s at revision %d: not a revision", kind.Name, rev)
	}
	var out []api.Object
	err := s.scan(ctx, kind, project, &rev, false, func(resp *clientv3.GetResponse) error {
		kvs := make([]*mvccpb.KeyValue, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			if want(versionOf(kind, kv)) {
				kvs = append(kvs, kv)
			}
		}
		objs, err := decodeAll(kind, kvs)
		if err != nil {
			return err
		}
		out = append(out, objs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scan reads the objects of a kind in project in batches of listBatch,
// at *rev when it is set (else at the revision of the first batch, which
// it stores in *rev), and hands each batch to fn.
func (s *etcdStore) scan(ctx context.Context, kind *api.Kind, project string, rev *int64, keysOnly bool, fn func(*clientv3.GetResponse) error) error {
	if !kind.Namespaced {
		project = ""
	}
	if project != "" && !validSegment(project) {
		return fmt.Errorf("store: list %s: invalid project %q", kind.Name, project)
	}
	prefix := kindPrefix(kind, project)
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	for {
		opts := []clientv3.OpOption{
			clientv3.WithRange(end),
			clientv3.WithLimit(listBatch),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend),
		}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		if *rev > 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		resp, err := s.cli.Get(ctx, start, opts...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return fmt.Errorf("store: list %s at revision %d: %w", kind.Name, *rev, ErrCompacted)
			}
			return fmt.Errorf("store: list %s: %w", kind.Name, err)
		}
		if *rev == 0 {
			*rev = resp.Header.Revision
		}
		if err := fn(resp); err != nil {
			return err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// versionOf returns the version of a stored object.
func versionOf(kind *api.Kind, kv *mvccpb.KeyValue) Version {
	return Version{Key: strings.TrimPrefix(string(kv.Key), objectPrefix+kind.Plural+"/"), Revision: kv.ModRevision}
}

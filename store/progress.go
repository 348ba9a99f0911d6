package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/ouroboros-cloud/ouro/api"
)

// Progress is a store whose watches can say how far they are, for a
// reader that answers consistent reads from what a watch delivered (the
// API server's watch cache): it learns the store's current revision with
// a cheap request, then waits until its watch has passed it.
type Progress interface {
	// Revision returns the store's current revision, read linearizably
	// (every write acknowledged before the call is at or below it),
	// reading no object.
	Revision(ctx context.Context) (int64, error)
	// WatchProgress is Watch of a kind in all projects whose channel also
	// carries, after each RequestProgress of the kind, an event of type
	// api.Bookmark (no object) whose Revision the watch has passed: every
	// change up to it was delivered before it. A request made while the
	// watch catches up may go unanswered; ask again.
	WatchProgress(ctx context.Context, kind *api.Kind, fromRev int64) (<-chan Event, error)
	// RequestProgress asks the progress watches of kind for a bookmark.
	RequestProgress(ctx context.Context, kind *api.Kind) error
}

// revisionKey is read for the current revision: it is never written, so
// the read finds nothing and costs one index lookup.
const revisionKey = "/ouro/revision"

// Revision implements Progress.
func (s *etcdStore) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, revisionKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("store: current revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// progressStream puts the progress watches of kind on a gRPC watch
// stream of their own (etcd's client groups watches by their context's
// metadata): etcd answers a progress request only when every watch of the
// stream has caught up, and a bookmark goes to each watch on it, so the
// stream holds only the watches that want it.
func progressStream(ctx context.Context, kind *api.Kind) context.Context {
	return metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "ouro-progress", kind.Plural)
}

// WatchProgress implements Progress.
func (s *etcdStore) WatchProgress(ctx context.Context, kind *api.Kind, fromRev int64) (<-chan Event, error) {
	return s.watch(progressStream(ctx, kind), ctx, kind, "", fromRev, true)
}

// RequestProgress implements Progress.
func (s *etcdStore) RequestProgress(ctx context.Context, kind *api.Kind) error {
	if err := s.cli.RequestProgress(progressStream(ctx, kind)); err != nil {
		return fmt.Errorf("store: request progress of %s watches: %w", kind.Name, err)
	}
	return nil
}

package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// listBatch is how many keys List reads from etcd at a time.
const listBatch = 1000

// continueToken is the decoded form of ListOptions.Continue.
type continueToken struct {
	// Rev is the revision the first page was read at.
	Rev int64 `json:"rev"`
	// Start is the next key to read, relative to the list prefix, so a
	// token can never read outside the kind and project it was made for.
	Start string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{Rev: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var tok continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &tok)
	}
	if err == nil && (tok.Rev <= 0 || tok.Start == "") {
		err = errors.New("missing fields")
	}
	if err != nil {
		return continueToken{}, api.Invalid("continue", "pass the continue token of the previous page unchanged, or omit it to start again",
			"malformed continue token: %v", err)
	}
	return tok, nil
}

// List implements Interface. Pages after the first are read at the
// revision of the first, so a paginated list is one consistent snapshot.
func (s *etcdStore) List(ctx context.Context, kind *api.Kind, project string, opts ListOptions) ([]api.Object, api.ListMeta, error) {
	if !kind.Namespaced {
		project = ""
	}
	if project != "" && !validSegment(project) {
		return nil, api.ListMeta{}, fmt.Errorf("store: list %s: invalid project %q", kind.Name, project)
	}
	if opts.Limit < 0 {
		return nil, api.ListMeta{}, api.Invalid("limit", "use a positive page size, or 0 for all", "limit %d is negative", opts.Limit)
	}
	prefix := kindPrefix(kind, project)
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	var rev int64
	if opts.Continue != "" {
		tok, err := decodeContinue(opts.Continue)
		if err != nil {
			return nil, api.ListMeta{}, err
		}
		start, rev = prefix+tok.Start, tok.Rev
	}

	batch := listBatch
	if opts.Limit > 0 && opts.Limit < batch {
		batch = opts.Limit + 1 // one more tells whether another page follows
	}
	var items []api.Object
	if opts.Limit > 0 {
		items = make([]api.Object, 0, opts.Limit)
	}
	var next string
	for {
		getOpts := []clientv3.OpOption{
			clientv3.WithRange(end),
			clientv3.WithLimit(int64(batch)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend),
		}
		if rev > 0 {
			getOpts = append(getOpts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, start, getOpts...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, api.ListMeta{}, fmt.Errorf("store: list %s at revision %d: %w", kind.Name, rev, ErrCompacted)
			}
			return nil, api.ListMeta{}, fmt.Errorf("store: list %s: %w", kind.Name, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		objs, err := decodeAll(kind, resp.Kvs)
		if err != nil {
			return nil, api.ListMeta{}, err
		}
		for i, kv := range resp.Kvs {
			if opts.Limit > 0 && len(items) == opts.Limit {
				next = string(kv.Key)
				break
			}
			obj := objs[i]
			if !opts.Selector.Matches(obj.Meta().Labels) || (opts.Filter != nil && !opts.Filter(obj)) {
				continue
			}
			items = append(items, obj)
			if opts.Limit > 0 && len(items) == opts.Limit && i == len(resp.Kvs)-1 && resp.More {
				next = string(kv.Key) + "\x00"
			}
		}
		if next != "" || !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	meta := api.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}
	if next != "" {
		meta.Continue = encodeContinue(rev, strings.TrimPrefix(next, prefix))
	}
	return items, meta, nil
}

// parallelDecodeMin is the batch size from which decodeAll uses all CPUs:
// JSON decoding dominates the cost of a large list.
const parallelDecodeMin = 256

// decodeAll decodes kvs into objects of kind, in parallel for large
// batches.
func decodeAll(kind *api.Kind, kvs []*mvccpb.KeyValue) ([]api.Object, error) {
	objs := make([]api.Object, len(kvs))
	workers := min(runtime.GOMAXPROCS(0), len(kvs)/(parallelDecodeMin/2))
	if workers <= 1 {
		for i, kv := range kvs {
			obj, err := decodeNew(kind, kv)
			if err != nil {
				return nil, err
			}
			objs[i] = obj
		}
		return objs, nil
	}
	errs := make([]error, workers)
	chunk := (len(kvs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(kvs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				obj, err := decodeNew(kind, kvs[i])
				if err != nil {
					errs[w] = err
					return
				}
				objs[i] = obj
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return objs, nil
}

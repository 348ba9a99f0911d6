package watchcache

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
)

// parallelEncodeMin is the list size from which lists encode their items
// on all CPUs: JSON encoding dominates the server's cost of a large list.
const parallelEncodeMin = 256

// listBufferSize is the buffer a list is written through: the answer goes
// out as it is assembled, in pieces of this size, never as one buffer.
const listBufferSize = 64 << 10

// WriteList answers 200 with the api.List of kind k holding objs (prepared
// for output here), byte for byte as a json.Encoder would write the whole
// list, encoding the items in parallel. With a view, each item is the
// view of its object.
func (c *Cache) WriteList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta, objs []api.Object, view *api.View) error {
	items := make([][]byte, len(objs))
	if view != nil {
		// Pages (limit, continue) and stores without snapshots: views are
		// small, encoded one by one.
		for i, o := range objs {
			raw, err := json.Marshal(view.Of(c.prepare(o)))
			if err != nil {
				return fmt.Errorf("encode the %s view of %s %s: %w", view.Name, k.Name, o.Meta().Name, err)
			}
			items[i] = raw
		}
	} else {
		encoded, err := encodeObjects(objs, c.prepare)
		if err != nil {
			return fmt.Errorf("encode %s list: %w", k.Name, err)
		}
		for i, co := range encoded {
			items[i] = co.raw
		}
	}
	lw, err := startList(w, k, meta)
	if err != nil {
		return err
	}
	for _, raw := range items {
		lw.item(raw)
	}
	lw.end()
	return nil
}

// listWriter streams an api.List: the head, then the encoded items one by
// one, then the end, byte for byte as a json.Encoder would write the
// whole list. A failed write means the client left; the rest is dropped.
type listWriter struct {
	bw *bufio.Writer
	n  int
}

// startList answers 200 and writes the head of the api.List of kind k.
func startList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta) (*listWriter, error) {
	head, err := json.Marshal(api.List[api.Object]{Kind: k.Name + "List", Metadata: meta, Items: []api.Object{}})
	if err != nil {
		return nil, fmt.Errorf("encode %s list: %w", k.Name, err)
	}
	// head ends in `[]}`: the items go between the brackets.
	head = head[:len(head)-2]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	lw := &listWriter{bw: bufio.NewWriterSize(w, listBufferSize)}
	lw.bw.Write(head)
	return lw, nil
}

// item writes one encoded item.
func (lw *listWriter) item(raw []byte) {
	if lw.n > 0 {
		lw.bw.WriteByte(',')
	}
	lw.bw.Write(raw)
	lw.n++
}

// end closes the list and flushes it.
func (lw *listWriter) end() {
	lw.bw.WriteString("]}\n")
	lw.bw.Flush()
}

// snapshot returns the objects of kind k in project ("" for all), sorted
// by key, as of the store's current revision or later, and the revision:
// from the kind's mirror when it is ready, else from the list cache,
// which reads the store.
func (c *Cache) snapshot(ctx context.Context, k *api.Kind, project string, view *api.View) ([]*cachedObject, int64, error) {
	if objs, rev, ok := c.consistent(ctx, k, project, view); ok {
		return objs, rev, nil
	}
	return c.lists.list(ctx, k, project)
}

// CanList reports whether full lists are answered from memory (List):
// the store can list in snapshots.
func (c *Cache) CanList() bool { return c.lists != nil }

// List answers a full list (no limit, no continue) of kind k in project
// ("" for all) from the list cache: the objects that pass sel and match,
// each as view shows it (the whole object when view is nil). Whether an
// object passes is decided on the whole object, view or not. The answer
// is written from the bytes the cache keeps, through a small buffer.
// Call it only when CanList.
func (c *Cache) List(ctx context.Context, w http.ResponseWriter, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool, view *api.View) error {
	all, rev, err := c.snapshot(ctx, k, project, view)
	if err != nil {
		return fmt.Errorf("list %s: %w", k.Plural, err)
	}
	// The items are picked (and their views encoded) before the answer
	// starts, so that an error is still answered as one; what is kept is
	// a reference per item to bytes the cache holds.
	items := make([][]byte, 0, len(all))
	for _, co := range all {
		if !sel.Matches(co.obj.Meta().Labels) || !match(co.obj) {
			continue
		}
		raw := co.raw
		if view != nil {
			if raw, err = co.viewed(view); err != nil {
				return fmt.Errorf("list %s: %w", k.Plural, err)
			}
		}
		items = append(items, raw)
	}
	lw, err := startList(w, k, api.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)})
	if err != nil {
		return err
	}
	for _, raw := range items {
		lw.item(raw)
	}
	lw.end()
	return nil
}

// Objects returns the objects of kind k in project ("" for all) from the
// list cache, as one consistent snapshot of the store, in key order:
// prepared for output as lists answer them. They are shared with the
// cache and other callers: never modify them. Call it only when CanList.
func (c *Cache) Objects(ctx context.Context, k *api.Kind, project string) ([]api.Object, error) {
	all, _, err := c.lists.list(ctx, k, project)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	out := make([]api.Object, len(all))
	for i, co := range all {
		out[i] = co.obj
	}
	return out, nil
}

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

// WriteList answers 200 with the api.List of kind k holding objs (prepared
// for output here), byte for byte as a json.Encoder would write the whole
// list, encoding the items in parallel.
func (c *Cache) WriteList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta, objs []api.Object) error {
	encoded, err := encodeObjects(objs, c.prepare)
	if err != nil {
		return fmt.Errorf("encode %s list: %w", k.Name, err)
	}
	items := make([][]byte, len(encoded))
	for i, co := range encoded {
		items[i] = co.raw
	}
	return writeRawList(w, k, meta, items)
}

// writeRawList answers 200 with the api.List of kind k whose items are
// the encoded (comma-separated) runs of items, byte for byte as a json.Encoder
// would.
func writeRawList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta, items [][]byte) error {
	head, err := json.Marshal(api.List[api.Object]{Kind: k.Name + "List", Metadata: meta, Items: []api.Object{}})
	if err != nil {
		return fmt.Errorf("encode %s list: %w", k.Name, err)
	}
	// head ends in `[]}`: the items go between the brackets.
	head = head[:len(head)-2]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// A failed write means the client left.
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head)
	for i, item := range items {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(item)
	}
	bw.WriteString("]}\n")
	bw.Flush()
	return nil
}

// CanList reports whether full lists are answered from memory (List):
// the store can list in snapshots.
func (c *Cache) CanList() bool { return c.lists != nil }

// List answers a full list (no limit, no continue) of kind k in project
// ("" for all) from the list cache: the objects that pass sel and match.
// Call it only when CanList.
func (c *Cache) List(ctx context.Context, w http.ResponseWriter, k *api.Kind, project string, sel api.Selector, match func(api.Object) bool) error {
	all, rev, err := c.lists.list(ctx, k, project)
	if err != nil {
		return fmt.Errorf("list %s: %w", k.Plural, err)
	}
	items := make([][]byte, 0, len(all))
	for _, co := range all {
		if sel.Matches(co.obj.Meta().Labels) && match(co.obj) {
			items = append(items, co.raw)
		}
	}
	return writeRawList(w, k, api.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}, items)
}

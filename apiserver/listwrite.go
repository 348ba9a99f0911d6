package apiserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
)

// parallelEncodeMin is the list size from which lists encode their items
// on all CPUs: JSON encoding dominates the server's cost of a large list.
const parallelEncodeMin = 256

// writeList answers 200 with the api.List of kind k holding objs (prepared
// for output here), byte for byte as writeJSON would, encoding the items
// in parallel.
func writeList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta, objs []api.Object) error {
	encoded, err := encodeObjects(objs)
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
// the encoded (comma-separated) runs of items, byte for byte as writeJSON
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

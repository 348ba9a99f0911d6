package apiserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
)

// parallelEncodeMin is the list size from which writeList encodes items
// on all CPUs: JSON encoding dominates the server's cost of a large list.
const parallelEncodeMin = 256

// bufPool holds the buffers lists are encoded into.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeList answers 200 with the api.List of kind k holding objs (prepared
// for output here), byte for byte as writeJSON would, but encoding the
// items in parallel into pooled buffers.
func writeList(w http.ResponseWriter, k *api.Kind, meta api.ListMeta, objs []api.Object) error {
	workers := max(1, min(runtime.GOMAXPROCS(0), len(objs)/(parallelEncodeMin/2)))
	chunk := (len(objs) + workers - 1) / workers
	bufs := make([]*bytes.Buffer, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		lo, hi := min(i*chunk, len(objs)), min((i+1)*chunk, len(objs))
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		bufs[i] = buf
		wg.Go(func() { errs[i] = encodeItems(buf, objs[lo:hi]) })
	}
	wg.Wait()
	defer func() {
		for _, b := range bufs {
			bufPool.Put(b)
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("encode %s list: %w", k.Name, err)
	}

	items := make([][]byte, 0, len(bufs))
	for _, b := range bufs {
		if b.Len() > 0 {
			items = append(items, b.Bytes())
		}
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

// encodeItems appends objs, prepared for output and separated by commas,
// to buf.
func encodeItems(buf *bytes.Buffer, objs []api.Object) error {
	enc := json.NewEncoder(buf)
	for i, o := range objs {
		if i > 0 {
			buf.Truncate(buf.Len() - 1) // the encoder's newline
			buf.WriteByte(',')
		}
		if err := enc.Encode(prepareOut(o)); err != nil {
			return err
		}
	}
	if len(objs) > 0 {
		buf.Truncate(buf.Len() - 1)
	}
	return nil
}

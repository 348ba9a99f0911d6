package watchcache

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }

// BenchmarkListInstances10k measures a full list of 10,000 instances (as
// `ouro instance list` asks for it: one request, no limit) over a real
// embedded etcd: reading, filtering and encoding.
func BenchmarkListInstances10k(b *testing.B) {
	const n = 10000
	st := etcdStore(b)
	c := newCache(b, st)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				in := benchInstance(i)
				if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	all := func(api.Object) bool { return true }
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		if err := c.List(ctx, w, api.InstanceKind, "", api.Selector{}, all, nil); err != nil {
			b.Fatal(err)
		}
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		bytes = w.n
	}
	b.SetBytes(bytes)
}

package apiserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
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

// BenchmarkListInstances10k measures the server's side of a full list of
// 10,000 instances (as `ouro instance list` asks for it: one request, no
// limit) over a real embedded etcd: reading, filtering and encoding.
func BenchmarkListInstances10k(b *testing.B) {
	const n = 10000
	st := store.NewEtcd(etcdtest.Client(b))
	srv, err := New(Config{Store: st, DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		b.Fatal(err)
	}
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
	h := srv.Handler()
	req := httptest.NewRequest("GET", "/v1/instances", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		bytes = w.n
	}
	b.SetBytes(bytes)
}

// benchInstance is an instance as the scale benchmark makes them, placed
// and running.
func benchInstance(i int) *api.Instance {
	in := &api.Instance{
		Metadata: api.ObjectMeta{Name: fmt.Sprintf("i-%05d", i), Project: "default", Labels: map[string]string{"bench": "scale"}},
		Spec: api.InstanceSpec{Image: "img", Flavor: "tiny", Tolerations: []string{api.TaintHollow},
			Networks: []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}},
	}
	in.Status.Phase = api.PhaseRunning
	in.Status.Host = fmt.Sprintf("hollow-%04d", i%1000)
	in.Status.Interfaces = []api.Interface{{Network: "default", IP: fmt.Sprintf("172.31.%d.%d", i/250, i%250+2), MAC: "0a:58:ac:1f:00:02"}}
	return in
}

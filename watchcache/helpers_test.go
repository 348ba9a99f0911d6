package watchcache

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/store"
)

// prepare fills the kind of the objects the tests use, as the API
// server's Prepare does.
func prepare(obj api.Object) api.Object {
	switch o := obj.(type) {
	case *api.Instance:
		o.Kind = obj.GetKind().Name
	case *api.Flavor:
		o.Kind = obj.GetKind().Name
	}
	return obj
}

// newCache returns a Cache over st that ends with the test.
func newCache(t testing.TB, st store.Interface) *Cache {
	t.Helper()
	life, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(life, Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Prepare: prepare,
		ErrorOf: func(err error) *api.Error { return &api.Error{Code: api.CodeInternal, Message: err.Error()} }})
}

func freeLoopbackURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// etcdStore starts an embedded etcd for the rest of the test and returns
// a store over it.
func etcdStore(t testing.TB) store.Interface {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd, err := etcdembed.Start(ctx, etcdembed.Config{
		DataDir:   t.TempDir(),
		ClientURL: freeLoopbackURL(t),
		PeerURL:   freeLoopbackURL(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { etcd.Close() })
	return store.NewEtcd(etcd.Client())
}

// watchStream serves c.Watch(q) over HTTP for the rest of the test and
// returns the events the client reads.
func watchStream(t *testing.T, c *Cache, q Query) <-chan api.WatchEvent[json.RawMessage] {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Watch(r.Context(), w, q); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch: status %d", res.StatusCode)
	}
	ch := make(chan api.WatchEvent[json.RawMessage], 100)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev api.WatchEvent[json.RawMessage]
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ch <- ev
			}
		}
	}()
	return ch
}

// nextObject waits up to ten seconds for the next event that is not a
// BOOKMARK and returns its type and the object's name.
func nextObject(t *testing.T, ch <-chan api.WatchEvent[json.RawMessage]) (api.EventType, string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the watch ended")
			}
			if ev.Type == api.Bookmark {
				continue
			}
			var o struct {
				Metadata api.ObjectMeta `json:"metadata"`
			}
			json.Unmarshal(ev.Object, &o)
			return ev.Type, o.Metadata.Name
		case <-deadline:
			t.Fatal("no event for 10s")
			return "", ""
		}
	}
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

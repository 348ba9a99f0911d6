package watchcache

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// feedStore hands out store watches the test feeds by hand. Only Watch
// is implemented: a watch from a resourceVersion lists nothing.
type feedStore struct {
	store.Interface
	mu    sync.Mutex
	froms []int64
	feeds []chan store.Event
}

func (f *feedStore) Watch(ctx context.Context, k *api.Kind, project string, fromRev int64) (<-chan store.Event, error) {
	ch := make(chan store.Event, 10)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.froms = append(f.froms, fromRev)
	f.feeds = append(f.feeds, ch)
	return ch, nil
}

// watch returns the nth store watch and the revision it started from,
// once it exists.
func (f *feedStore) watch(t *testing.T, n int) (chan store.Event, int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("store watch %d", n), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.feeds) > n
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.feeds[n], f.froms[n]
}

// eventually waits up to ten seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue returns the value of one of c's gauges or counters, or -1.
func metricValue(c *Cache, name string) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	return -1
}

func TestSharedWatchRestartsAndEnds(t *testing.T) {
	fs := &feedStore{}
	c := newCache(t, fs)
	q := Query{Kind: api.FlavorKind, Match: func(api.Object) bool { return true }, From: 100, Bookmark: time.Minute}
	a, b := watchStream(t, c, q), watchStream(t, c, q)
	feed, from := fs.watch(t, 0)
	if from != 100 {
		t.Fatalf("shared watch from %d, want 100", from)
	}
	eventually(t, "two subscribers", func() bool {
		return metricValue(c, "ouro_apiserver_watch_subscribers") == 2
	})
	if n := metricValue(c, "ouro_apiserver_shared_watches"); n != 1 {
		t.Errorf("shared watches = %v, want 1", n)
	}
	feed <- flavorEvent("one", 101)
	// A broken watch restarts from the last revision it saw.
	feed <- store.Event{Err: fmt.Errorf("connection lost")}
	close(feed)
	feed, from = fs.watch(t, 1)
	if from != 101 {
		t.Fatalf("restarted from %d, want 101", from)
	}
	feed <- flavorEvent("two", 102)
	for _, ch := range []<-chan api.WatchEvent[json.RawMessage]{a, b} {
		for _, want := range []string{"one", "two"} {
			if typ, name := nextObject(t, ch); typ != api.Added || name != want {
				t.Fatalf("saw %s %s, want ADDED %s", typ, name, want)
			}
		}
	}
	// A compacted one ends every stream with Gone.
	feed <- store.Event{Err: fmt.Errorf("watch: %w", store.ErrCompacted)}
	close(feed)
	for _, ch := range []<-chan api.WatchEvent[json.RawMessage]{a, b} {
		var ev api.WatchEvent[json.RawMessage]
		select {
		case ev = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no ERROR event within 10s")
		}
		var body api.ErrorBody
		json.Unmarshal(ev.Object, &body)
		if ev.Type != api.ErrorEvent || body.Error == nil || body.Error.Code != api.CodeGone {
			t.Fatalf("event %s %s, want ERROR Gone", ev.Type, ev.Object)
		}
		if _, ok := <-ch; ok {
			t.Error("stream goes on after ERROR")
		}
	}
	if n := metricValue(c, "ouro_apiserver_shared_watches"); n != 0 {
		t.Errorf("shared watches = %v after the end, want 0", n)
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name            string
		typ             api.EventType
		had             bool
		listed, visible bool
		want            api.EventType // "" for nothing sent
		wantHas         bool          // the client holds the object after
	}{
		{"new and visible after a list", api.Modified, false, true, true, api.Added, true},
		{"new and visible when resumed", api.Modified, false, false, true, api.Modified, true},
		{"held and visible", api.Modified, true, true, true, api.Modified, true},
		{"held, no longer visible", api.Modified, true, true, false, api.Deleted, false},
		{"never visible", api.Modified, false, true, false, "", false},
		{"held and deleted", api.Deleted, true, true, true, api.Deleted, false},
		{"deleted, never sent after a list", api.Deleted, false, true, true, "", false},
		{"deleted, visible when resumed", api.Deleted, false, false, true, api.Deleted, false},
		{"deleted, invisible when resumed", api.Deleted, false, false, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := map[string]bool{}
			if tt.had {
				sent["p/x"] = true
			}
			typ, ok := translate(tt.typ, sent, "p/x", tt.listed, tt.visible)
			if ok != (tt.want != "") || (ok && typ != tt.want) {
				t.Errorf("translate = %q, %v; want %q", typ, ok, tt.want)
			}
			if sent["p/x"] != tt.wantHas {
				t.Errorf("client holds the object: %v, want %v", sent["p/x"], tt.wantHas)
			}
		})
	}
}

package apiserver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// metricValue returns the value of a gauge or counter of s, or -1.
func metricValue(s *Server, name string) float64 {
	mfs, _ := s.metrics.reg.Gather()
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

// storeWatchers returns how many store watches of the fake are open.
func (f *fakeStore) storeWatchers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

// nextObject waits up to ten seconds for the next event that is not a
// BOOKMARK (bookmarks keep coming, so next's own deadline is not enough)
// and returns its type and the object's name.
func nextObject(t *testing.T, ch <-chan api.WatchEvent[json.RawMessage]) (api.EventType, string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		ev := next(t, ch)
		if ev.Type == api.Bookmark {
			continue
		}
		var o struct {
			Metadata api.ObjectMeta `json:"metadata"`
		}
		json.Unmarshal(ev.Object, &o)
		return ev.Type, o.Metadata.Name
	}
	t.Fatal("only bookmarks for 10s")
	return "", ""
}

func TestWatchesShareOneStoreWatch(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	e.project("blue")
	e.image("blue", "img", false)
	all, _ := e.watchStream("/v1/instances?watch=true", e.admin)
	def, _ := e.watchStream("/v1/projects/default/instances?watch=true", e.admin)
	host, _ := e.watchStream("/v1/instances?watch=true&host=h1", e.hostToken("h1"))
	eventually(t, "three subscribers", func() bool {
		return metricValue(e.srv, "ouro_apiserver_watch_subscribers") == 3
	})
	if n := metricValue(e.srv, "ouro_apiserver_shared_watches"); n != 1 {
		t.Errorf("shared watches = %v, want 1", n)
	}
	if n := e.fake.storeWatchers(); n != 1 {
		t.Errorf("store watches = %d, want 1", n)
	}

	e.instance(e.admin, "blue", "b", "img")
	e.instance(e.admin, "default", "d", "img")
	e.place("default", "d", "h1", api.PhaseScheduled)
	e.place("default", "d", "h2", api.PhaseScheduled)
	tests := []struct {
		name string
		ch   <-chan api.WatchEvent[json.RawMessage]
		want []string
	}{
		{"all projects", all, []string{"ADDED b", "ADDED d", "MODIFIED d", "MODIFIED d"}},
		{"one project", def, []string{"ADDED d", "MODIFIED d", "MODIFIED d"}},
		// The host sees d arrive and, when it moves away, go.
		{"host", host, []string{"ADDED d", "DELETED d"}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			typ, name := nextObject(t, tt.ch)
			if got := string(typ) + " " + name; got != want {
				t.Errorf("%s: event %d = %s, want %s", tt.name, i, got, want)
			}
		}
	}
}

func TestWatchResumeFromRing(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	first, _ := e.watchStream("/v1/projects/default/instances?watch=true", e.admin)
	eventually(t, "the shared watch", func() bool { return e.fake.storeWatchers() == 1 })
	e.instance(e.admin, "default", "a", "img")
	if typ, name := nextObject(t, first); typ != api.Added || name != "a" {
		t.Fatalf("first watch saw %s %s", typ, name)
	}
	rv := strconv.FormatInt(e.fake.revision(), 10)
	e.instance(e.admin, "default", "b", "img")

	// A recent resourceVersion is served from the shared watch's ring.
	resumed, _ := e.watchStream("/v1/projects/default/instances?watch=true&resourceVersion="+rv, e.admin)
	if typ, name := nextObject(t, resumed); typ != api.Added || name != "b" {
		t.Fatalf("resumed watch saw %s %s, want ADDED b", typ, name)
	}
	if n := e.fake.storeWatchers(); n != 1 {
		t.Errorf("store watches = %d, want 1 (served from the ring)", n)
	}

	// One from before the shared watch began gets a store watch of its own.
	old, _ := e.watchStream("/v1/projects/default/instances?watch=true&resourceVersion=1", e.admin)
	for _, want := range []string{"a", "b"} {
		if typ, name := nextObject(t, old); typ != api.Added || name != want {
			t.Fatalf("old watch saw %s %s, want ADDED %s", typ, name, want)
		}
	}
	if n := e.fake.storeWatchers(); n != 2 {
		t.Errorf("store watches = %d, want 2", n)
	}
}

func TestSharedWatchMetricsServed(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/metrics", e.admin, nil)
	for _, name := range []string{"ouro_apiserver_shared_watches", "ouro_apiserver_watch_subscribers"} {
		if r.status != http.StatusOK || !strings.Contains(string(r.body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestHostWatchesSeeTheirHost checks the host index of the shared watch:
// a watch with a host filter sees objects arrive on and leave its host,
// whether or not the shared watch saw where they were before, and its
// bookmarks move on with events of other hosts it is never offered.
func TestHostWatchesSeeTheirHost(t *testing.T) {
	e := newEnv(t)
	e.srv.cfg.BookmarkInterval = 20 * time.Millisecond
	e.image("default", "img", false)
	// "old" is on h1 before any watch exists: the shared watch will not
	// know where it was when it first moves.
	e.instance(e.admin, "default", "old", "img")
	e.place("default", "old", "h1", api.PhaseRunning)

	watch := func(host string) <-chan api.WatchEvent[json.RawMessage] {
		ch, res := e.watchStream("/v1/instances?watch=true&host="+host, e.hostToken(host))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("watch of %s: status %d", host, res.StatusCode)
		}
		return ch
	}
	h1, h2, h3 := watch("h1"), watch("h2"), watch("h3")
	expect := func(ch <-chan api.WatchEvent[json.RawMessage], who string, typ api.EventType, name string) {
		t.Helper()
		if gotTyp, got := nextObject(t, ch); gotTyp != typ || got != name {
			t.Fatalf("%s saw %s %s, want %s %s", who, gotTyp, got, typ, name)
		}
	}
	expect(h1, "h1", api.Added, "old") // the initial list

	e.place("default", "old", "h2", api.PhaseRunning)
	expect(h1, "h1", api.Deleted, "old")
	expect(h2, "h2", api.Added, "old")

	e.instance(e.admin, "default", "a", "img")
	e.place("default", "a", "h1", api.PhaseScheduled)
	expect(h1, "h1", api.Added, "a")
	moved := e.place("default", "a", "h2", api.PhaseScheduled)
	expect(h1, "h1", api.Deleted, "a")
	expect(h2, "h2", api.Added, "a")
	e.place("default", "a", "h2", api.PhaseRunning)
	expect(h2, "h2", api.Modified, "a")

	// h3 is offered none of this, yet its bookmarks pass the last move.
	want, _ := strconv.ParseInt(moved.Metadata.ResourceVersion, 10, 64)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := next(t, h3)
		if ev.Type != api.Bookmark {
			t.Fatalf("h3 saw %s: %s", ev.Type, ev.Object)
		}
		var b struct {
			Metadata api.ListMeta `json:"metadata"`
		}
		json.Unmarshal(ev.Object, &b)
		if rv, _ := strconv.ParseInt(b.Metadata.ResourceVersion, 10, 64); rv >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("h3's bookmarks stay at %s, before revision %d", b.Metadata.ResourceVersion, want)
		}
	}
}

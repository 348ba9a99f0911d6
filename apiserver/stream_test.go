package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/internal/watchtest"
)

// watchStream opens a watch and returns a channel of its events.
func (e *env) watchStream(path, token string) (<-chan api.WatchEvent[json.RawMessage], *http.Response) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { res.Body.Close() })
	ch := make(chan api.WatchEvent[json.RawMessage], 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			var ev api.WatchEvent[json.RawMessage]
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ch <- ev
			}
		}
	}()
	return ch, res
}

func TestWatch(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	e.instance(e.admin, "default", "old", "img")
	ch, res := e.watchStream("/v1/projects/default/instances?watch=true", e.admin)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch status %d", res.StatusCode)
	}
	ev := watchtest.Next(t, ch)
	var in api.Instance
	json.Unmarshal(ev.Object, &in)
	if ev.Type != api.Added || in.Metadata.Name != "old" || in.Kind != "Instance" {
		t.Fatalf("first event %s %s", ev.Type, ev.Object)
	}
	e.instance(e.admin, "default", "new", "img")
	ev = watchtest.Next(t, ch)
	json.Unmarshal(ev.Object, &in)
	if ev.Type != api.Added || in.Metadata.Name != "new" {
		t.Fatalf("event %s %s, want ADDED new", ev.Type, ev.Object)
	}
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances/new/stop", e.admin, nil)
	if ev = watchtest.Next(t, ch); ev.Type != api.Modified {
		t.Fatalf("event %s, want MODIFIED", ev.Type)
	}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/new", e.admin, nil)
	if ev = watchtest.Next(t, ch); ev.Type != api.Deleted {
		t.Fatalf("event %s, want DELETED", ev.Type)
	}
	wait.For(t, 10*time.Second, "one watch in flight", func() bool { return e.metric("ouro_apiserver_watches_in_flight") == 1 })
}

func TestWatchHostFilterAndBookmarks(t *testing.T) {
	e := newEnv(t)
	e.srv.cfg.BookmarkInterval = 20 * time.Millisecond
	e.image("default", "img", false)
	host := e.hostToken("h1")
	ch, res := e.watchStream("/v1/instances?watch=true&host=h1", host)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch status %d", res.StatusCode)
	}
	e.instance(e.admin, "default", "a", "img")
	e.instance(e.admin, "default", "b", "img")
	e.place("default", "b", "h2", api.PhaseScheduled)
	e.place("default", "a", "h1", api.PhaseScheduled)
	// The host sees nothing until "a" is placed on it, then an ADDED.
	for {
		ev := watchtest.Next(t, ch)
		if ev.Type == api.Bookmark {
			var b struct {
				Metadata api.ListMeta `json:"metadata"`
			}
			json.Unmarshal(ev.Object, &b)
			if b.Metadata.ResourceVersion == "" {
				t.Fatalf("bookmark without resourceVersion: %s", ev.Object)
			}
			continue
		}
		var in api.Instance
		json.Unmarshal(ev.Object, &in)
		if ev.Type != api.Added || in.Metadata.Name != "a" {
			t.Fatalf("host saw %s %s", ev.Type, in.Metadata.Name)
		}
		break
	}
	// Bookmarks arrive while idle.
	for ev := watchtest.Next(t, ch); ev.Type != api.Bookmark; ev = watchtest.Next(t, ch) {
		t.Fatalf("unexpected %s", ev.Type)
	}
}

func TestWatchCompacted(t *testing.T) {
	e := newEnv(t)
	e.fake.compact()
	ch, res := e.watchStream("/v1/flavors?watch=true&resourceVersion=1", e.admin)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	watchtest.WantGone(t, ch)
}

func TestWatchEndsOnClose(t *testing.T) {
	e := newEnv(t)
	ch, _ := e.watchStream("/v1/flavors?watch=true", e.admin)
	for range 4 {
		watchtest.Next(t, ch) // the four flavors
	}
	e.srv.Close()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after Close")
	}
}

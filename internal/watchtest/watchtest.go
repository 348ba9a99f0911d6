// Package watchtest reads the event streams of API watches in tests, with
// deadlines, for the packages that serve watches (the API server and its
// watch cache).
package watchtest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Timeout is how long the helpers wait for an event.
const Timeout = 10 * time.Second

// Stream is a watch stream as the tests decode it: each event's object is
// left as the JSON the server wrote.
type Stream = <-chan api.WatchEvent[json.RawMessage]

// Next returns the next event of ch. It fails t when none comes within
// Timeout or the stream ends.
func Next(t testing.TB, ch Stream) api.WatchEvent[json.RawMessage] {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch stream ended")
		}
		return ev
	case <-time.After(Timeout):
		t.Fatalf("no watch event within %v", Timeout)
	}
	return api.WatchEvent[json.RawMessage]{}
}

// NextObject returns the type of the next event of ch that is not a
// BOOKMARK and the name of its object. Bookmarks keep coming, so it fails
// t when there is no other event within Timeout in all.
func NextObject(t testing.TB, ch Stream) (api.EventType, string) {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch stream ended")
			}
			if ev.Type == api.Bookmark {
				continue
			}
			var o struct {
				Metadata api.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(ev.Object, &o); err != nil {
				t.Fatalf("%s event: %v", ev.Type, err)
			}
			return ev.Type, o.Metadata.Name
		case <-deadline:
			t.Fatalf("only bookmarks for %v", Timeout)
			return "", ""
		}
	}
}

// WantGone checks that the next event of ch is an ERROR event with code
// Gone and that the stream ends after it.
func WantGone(t testing.TB, ch Stream) {
	t.Helper()
	ev := Next(t, ch)
	var body api.ErrorBody
	json.Unmarshal(ev.Object, &body)
	if ev.Type != api.ErrorEvent || body.Error == nil || body.Error.Code != api.CodeGone {
		t.Fatalf("event %s %s, want ERROR Gone", ev.Type, ev.Object)
	}
	if _, ok := <-ch; ok {
		t.Error("stream goes on after ERROR")
	}
}

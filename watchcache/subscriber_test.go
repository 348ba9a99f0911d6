package watchcache

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func flavorEvent(name string, rev int64) store.Event {
	f := &api.Flavor{Metadata: api.ObjectMeta{Name: name, ResourceVersion: strconv.FormatInt(rev, 10)}}
	return store.Event{Type: api.Added, Object: f, Revision: rev}
}

func TestSlowSubscriberEndsWithGone(t *testing.T) {
	sub := newSubscriber("", "", api.Selector{}, func(api.Object) bool { return true }, false, 0, map[string]bool{})
	for i := range subscriberQueue {
		ev, err := newWatchEvent(flavorEvent(fmt.Sprintf("f%d", i), int64(i+1)), prepare)
		if err != nil {
			t.Fatal(err)
		}
		if !sub.offer(ev) {
			t.Fatalf("subscriber ended after %d events", i)
		}
	}
	ev, _ := newWatchEvent(flavorEvent("over", subscriberQueue+1), prepare)
	if sub.offer(ev) {
		t.Fatal("a full queue took another event")
	}
	lines, _, ended, e := sub.take()
	if !ended || e == nil || e.Code != api.CodeGone || len(lines) != subscriberQueue {
		t.Fatalf("take = %d lines, ended %v, err %v", len(lines), ended, e)
	}
	var we api.WatchEvent[api.Flavor]
	if err := json.Unmarshal(lines[0], &we); err != nil || we.Type != api.Added || we.Object.Metadata.Name != "f0" || we.Object.Kind != "Flavor" {
		t.Fatalf("first line %s: %+v %v", lines[0], we, err)
	}
}

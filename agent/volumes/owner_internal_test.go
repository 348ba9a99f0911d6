package volumes

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestOwnerSkipsHostsJustBack(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	host := func(name string, readyFor time.Duration) api.Host {
		return api.Host{Metadata: api.ObjectMeta{Name: name}, Status: api.HostStatus{Phase: api.HostReady,
			Conditions: []api.Condition{{Type: api.ConditionReady, Status: true, LastTransitionTime: now.Add(-readyFor)}}}}
	}
	settled := []api.Host{host("h1", time.Hour), host("h2", time.Hour), host("back", time.Second)}
	fresh := []api.Host{host("h1", time.Second), host("h2", 2*time.Second)}
	for i := range 200 {
		id := "vol-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if got := owner("", id, settled, now); got == "back" || got == "" {
			t.Fatalf("%s owned by %q: a host just back owns nothing while others are settled", id, got)
		}
		if got := owner("", id, fresh, now); got == "" {
			t.Fatalf("%s has no owner in a fresh cluster", id)
		}
	}
}

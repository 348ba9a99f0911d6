package volumes_test

import (
	"fmt"
	"testing"

	"github.com/ouroboros-cloud/ouro/agent/volumes"
	"github.com/ouroboros-cloud/ouro/api"
)

func hostList(ready ...string) []api.Host {
	var hs []api.Host
	for _, n := range ready {
		h := api.Host{Metadata: api.ObjectMeta{Name: n}, Status: api.HostStatus{Phase: api.HostReady}}
		hs = append(hs, h)
	}
	return hs
}

func TestOwner(t *testing.T) {
	hosts := hostList("h1", "h2", "h3")
	lost := hostList("h1", "h2", "h3")
	hollow := hostList("h1", "h2", "h3")
	for i := range hollow {
		hollow[i].Metadata.Labels = map[string]string{api.LabelHollow: "true"}
	}
	for _, tc := range []struct {
		name, host string
		hosts      []api.Host
		want       string
	}{
		{"local volume: its host", "h9", hosts, "h9"},
		{"no Ready host", "", nil, ""},
		{"hollow hosts keep nothing", "", hollow, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := volumes.Owner(tc.host, "vol-x", tc.hosts); got != tc.want {
				t.Fatalf("Owner = %q, want %q", got, tc.want)
			}
		})
	}
	// Host-less volumes spread over the hosts; losing a host moves only
	// its volumes, to the others.
	count := map[string]int{}
	for i := range 300 {
		id := fmt.Sprintf("vol-%d", i)
		o := volumes.Owner("", id, hosts)
		count[o]++
		before := o
		lost[0].Status.Phase = api.HostNotReady
		after := volumes.Owner("", id, lost)
		lost[0].Status.Phase = api.HostReady
		if before != "h1" && after != before {
			t.Fatalf("%s moved from %s to %s though %s is still Ready", id, before, after, before)
		}
		if after == "h1" || after == "" {
			t.Fatalf("%s owned by %q with h1 lost", id, after)
		}
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if count[h] < 50 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
}

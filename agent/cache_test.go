package agent

import (
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestCacheNeverResurrectsGoneInstances(t *testing.T) {
	c := newInstanceCache()
	at := func(rv string) *api.Instance {
		i := newInstance("web", "uid-web")
		i.Metadata.ResourceVersion = rv
		return i
	}
	c.set(at("5"))
	c.remove(at("6"))
	c.refresh(at("5")) // a late answer to a status write
	c.set(at("6"))     // a late watch event
	if cur, gone := c.get("demo/web"); cur != nil || len(gone) != 1 {
		t.Fatalf("after removal: cur %v, %d gone; want nil and 1", cur, len(gone))
	}
	c.set(at("7")) // placed here again
	if cur, gone := c.get("demo/web"); cur == nil || len(gone) != 0 {
		t.Fatalf("after a newer event: cur %v, %d gone; want it back", cur, len(gone))
	}
	c.set(at("3")) // stale
	if cur, _ := c.get("demo/web"); cur.Metadata.ResourceVersion != "7" {
		t.Errorf("stale event replaced rv 7 with %s", cur.Metadata.ResourceVersion)
	}

	// A successful list is the whole truth.
	other := newInstance("db", "uid-db")
	keys := c.replace([]api.Instance{*other})
	if len(keys) != 2 || !c.assigned("uid-db") {
		t.Errorf("replace keys = %v, want db and web", keys)
	}
	if _, ok := c.ByUID("uid-web"); ok {
		t.Error("web still assigned after a list without it")
	}
	if cur, gone := c.get("demo/web"); cur != nil || len(gone) != 1 {
		t.Errorf("web: cur %v, %d gone; want gone", cur, len(gone))
	}
}

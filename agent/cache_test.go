package agent

import (
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestCacheNeverResurrectsGoneInstances(t *testing.T) {
	c := newInstanceCache()
	at := func(rv string) *api.Instance {
		i := newInstance("web")
		i.Metadata.UID, i.Metadata.ResourceVersion = "uid-web", rv
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
	other := newInstance("db")
	other.Metadata.UID = "uid-db"
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

func TestCacheRecognisesOwnWrites(t *testing.T) {
	version := func(rv string, gen int64, phase api.InstancePhase) *api.Instance {
		i := newInstance("web")
		i.Metadata.UID = "uid-web"
		i.Metadata.ResourceVersion, i.Metadata.Generation, i.Status.Phase = rv, gen, phase
		return i
	}
	c := newInstanceCache()
	c.set(version("1", 1, api.PhaseScheduled))
	// Two writes in one reconcile; the answer of the first came back with
	// its resourceVersion, the second is still in flight.
	c.wrote(version("1", 1, api.PhaseStarting))
	c.wrote(version("2", 1, api.PhaseStarting))
	c.wrote(version("2", 1, api.PhaseFailed))
	steps := []struct {
		name string
		ev   *api.Instance
		want bool
	}{
		{"a user's spec change", version("3", 2, api.PhaseStarting), false},
		{"the first write", version("2", 1, api.PhaseStarting), true},
		{"the second write", version("3", 1, api.PhaseFailed), true},
		{"the second write again, written by someone else", version("4", 1, api.PhaseFailed), false},
		{"someone else's status write", version("5", 1, api.PhaseRunning), false},
	}
	for _, s := range steps {
		if got := c.echo(s.ev); got != s.want {
			t.Errorf("%s: echo = %v, want %v", s.name, got, s.want)
		}
	}

	// Writes are forgotten with their instance.
	c.wrote(version("6", 1, api.PhaseStopped))
	c.remove(version("7", 1, api.PhaseStopped))
	if c.echo(version("6", 1, api.PhaseStopped)) {
		t.Error("a write of a removed instance is still remembered")
	}
}

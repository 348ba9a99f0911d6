package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// fakeStore records Creates; every other method is unused here.
type fakeStore struct {
	store.Interface
	mu      sync.Mutex
	created []*api.Event
	opts    []store.CreateOptions
	err     error
	block   chan struct{}
}

func (f *fakeStore) Create(ctx context.Context, obj api.Object, opts store.CreateOptions) (bool, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	f.created = append(f.created, obj.(*api.Event))
	f.opts = append(f.opts, opts)
	return false, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestEventProjectAndFields(t *testing.T) {
	tests := []struct {
		name        string
		obj         api.Object
		wantProject string
	}{
		{"instance in its project", &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "shop", UID: "u1"}}, "shop"},
		{"host goes to system", &api.Host{Metadata: api.ObjectMeta{Name: "host-1", UID: "u2"}}, SystemProject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeStore{}
			r := New(fs, "scheduler").WithLogger(quiet())
			r.Event(context.Background(), tt.obj, api.EventNormal, "Scheduled", "placed on host %s", "h1")
			r.Wait()
			if len(fs.created) != 1 {
				t.Fatalf("created %d events, want 1", len(fs.created))
			}
			ev := fs.created[0]
			m := tt.obj.Meta()
			if ev.Metadata.Project != tt.wantProject {
				t.Errorf("project = %q, want %q", ev.Metadata.Project, tt.wantProject)
			}
			if ev.Object.Name != m.Name || ev.Object.UID != m.UID || ev.Object.Kind != tt.obj.GetKind().Name {
				t.Errorf("object = %+v", ev.Object)
			}
			if ev.Message != "placed on host h1" || ev.Reason != "Scheduled" || ev.Type != api.EventNormal || ev.Source != "scheduler" {
				t.Errorf("event = %+v", ev)
			}
			if ev.Time.IsZero() || ev.Kind != "Event" {
				t.Errorf("time %v kind %q", ev.Time, ev.Kind)
			}
			if fs.opts[0].TTL != time.Hour {
				t.Errorf("TTL = %v, want 1h", fs.opts[0].TTL)
			}
			if err := api.ValidateName("name", ev.Metadata.Name); err != nil {
				t.Errorf("event name %q: %v", ev.Metadata.Name, err)
			}
		})
	}
}

func TestNamesUniqueAndTimeOrdered(t *testing.T) {
	base := time.Unix(1700000000, 0)
	var names []string
	seen := map[string]bool{}
	for i := range 1000 {
		n := Name(base.Add(time.Duration(i) * time.Microsecond))
		if seen[n] {
			t.Fatalf("duplicate name %q", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	if !sort.StringsAreSorted(names) {
		t.Error("names do not sort by time")
	}
	if a, b := Name(base), Name(base); a == b {
		t.Errorf("two names at the same instant are equal: %q", a)
	}
}

func TestFailuresDoNotReachCaller(t *testing.T) {
	fs := &fakeStore{err: errors.New("etcd down")}
	r := New(fs, "x").WithLogger(quiet())
	r.Event(context.Background(), &api.Host{Metadata: api.ObjectMeta{Name: "h"}}, api.EventWarning, "R", "m")
	r.Wait()
	if len(fs.created) != 0 {
		t.Errorf("created %d events from a failing store", len(fs.created))
	}
}

func TestNeverBlocksCaller(t *testing.T) {
	fs := &fakeStore{block: make(chan struct{})}
	r := New(fs, "x").WithLogger(quiet())
	t.Cleanup(func() { close(fs.block); r.Wait() })
	done := make(chan struct{})
	go func() {
		for i := range 2 * maxInFlight {
			// Other objects each time: repeats would not be written.
			r.Event(context.Background(), &api.Host{Metadata: api.ObjectMeta{Name: fmt.Sprintf("h%d", i)}}, api.EventNormal, "R", "m")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Event blocked while the store hung")
	}
}

func TestRepeatsAreCounted(t *testing.T) {
	fs := &fakeStore{}
	r := New(fs, "scheduler").WithLogger(quiet())
	inst := &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "shop", UID: "u1"}}
	for range 100 {
		r.Event(context.Background(), inst, api.EventWarning, "FailedScheduling", "no host has %d vCPUs free", 4)
	}
	r.Event(context.Background(), inst, api.EventNormal, "Scheduled", "placed on host %s", "h1")
	r.Wait()
	var reasons []string
	for _, ev := range fs.created {
		reasons = append(reasons, ev.Reason)
	}
	sort.Strings(reasons) // written in the background, in any order
	if fmt.Sprint(reasons) != "[FailedScheduling Scheduled]" {
		t.Errorf("recorded %v, want one FailedScheduling (its repeats counted) and Scheduled", reasons)
	}
}

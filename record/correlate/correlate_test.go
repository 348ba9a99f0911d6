package correlate

import (
	"fmt"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestCorrelator(window time.Duration, burst int, refill time.Duration) (*Correlator, *clock) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := New(window, burst, refill)
	c.now = clk.now
	return c, clk
}

func event(uid, reason, message string) *api.Event {
	return &api.Event{Object: api.ObjectRef{Kind: "Instance", Project: "p", Name: "web", UID: uid},
		Type: api.EventWarning, Reason: reason, Message: message}
}

func TestRepeatsAreCounted(t *testing.T) {
	c, clk := newTestCorrelator(10*time.Minute, 25, time.Minute)
	steps := []struct {
		after      time.Duration
		uid        string
		message    string
		wantPosted bool
		wantCount  int32
	}{
		{0, "u1", "boom", true, 1},
		{time.Second, "u1", "boom", false, 0},
		{time.Minute, "u1", "boom", false, 0},
		{time.Second, "u1", "other", true, 1}, // another message
		{time.Second, "u2", "boom", true, 1},  // another object
		{9 * time.Minute, "u1", "boom", true, 3},
		{time.Second, "u1", "boom", false, 0},
	}
	for i, s := range steps {
		clk.t = clk.t.Add(s.after)
		ev := event(s.uid, "DriverError", s.message)
		if got := c.Correlate(ev); got != s.wantPosted || ev.Count != s.wantCount {
			t.Errorf("step %d: posted %v count %d, want %v count %d", i, got, ev.Count, s.wantPosted, s.wantCount)
		}
	}
}

func TestBudgetBoundsChangingMessages(t *testing.T) {
	c, clk := newTestCorrelator(10*time.Minute, 5, time.Minute)
	posted := 0
	// 1000 events in 10 s, each with its own message: the burst of 5.
	for i := range 1000 {
		clk.t = clk.t.Add(10 * time.Millisecond)
		if c.Correlate(event("u1", "DriverError", fmt.Sprintf("failure %d", i))) {
			posted++
		}
	}
	if posted != 5 {
		t.Errorf("%d events posted, want the burst of 5", posted)
	}
	// Then one a minute.
	clk.t = clk.t.Add(time.Minute)
	if !c.Correlate(event("u1", "DriverError", "after a minute")) {
		t.Error("an event a minute after the burst was dropped")
	}
	if c.Correlate(event("u1", "DriverError", "right after")) {
		t.Error("a second event within the minute was posted")
	}
	// Other objects have their own budget.
	if !c.Correlate(event("u2", "DriverError", "first")) {
		t.Error("another object's first event was dropped")
	}
}

func TestForgetsQuietEvents(t *testing.T) {
	c, clk := newTestCorrelator(time.Minute, 25, time.Second)
	for i := range 2 * maxTracked {
		clk.t = clk.t.Add(time.Second)
		c.Correlate(event(fmt.Sprintf("u%d", i), "Started", "instance started"))
	}
	c.mu.Lock()
	n := len(c.similar) + len(c.budgets)
	c.mu.Unlock()
	if n > maxTracked+200 {
		t.Errorf("%d entries remembered, want about %d at most", n, maxTracked)
	}
}

func TestSweepsAreAmortized(t *testing.T) {
	// Thousands of objects with an event each within the window: nothing
	// can be forgotten, and the map must not be walked on every event.
	c, clk := newTestCorrelator(10*time.Minute, 25, time.Minute)
	const objects = 16 * maxTracked
	for i := range objects {
		clk.t = clk.t.Add(time.Millisecond)
		if !c.Correlate(event(fmt.Sprintf("u%d", i), "Scheduled", "placed")) {
			t.Fatalf("event %d dropped", i)
		}
	}
	c.mu.Lock()
	sweeps := c.sweeps
	c.mu.Unlock()
	if sweeps > 8 {
		t.Errorf("%d full sweeps for %d events within one window, want a handful", sweeps, objects)
	}
	// Once the window has passed, a sweep forgets them all.
	clk.t = clk.t.Add(11 * time.Minute)
	c.Correlate(event("last", "Scheduled", "placed"))
	c.mu.Lock()
	n := len(c.similar) + len(c.budgets)
	c.mu.Unlock()
	if n > 2 {
		t.Errorf("%d entries remembered after a quiet window, want the last event's", n)
	}
}

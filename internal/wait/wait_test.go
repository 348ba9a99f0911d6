package wait

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a fatal failure instead of
// stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func (r *recorder) Errorf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestFor(t *testing.T) {
	tests := []struct {
		name     string
		after    int32 // the condition holds from this poll on; 0 never
		wantFail string
	}{
		{name: "at once", after: 1},
		{name: "after some polls", after: 5},
		{name: "never", wantFail: "timed out after 30ms waiting for never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var polls atomic.Int32
			r := &recorder{TB: t}
			For(r, 30*time.Millisecond, tt.name, func() bool {
				n := polls.Add(1)
				return tt.after != 0 && n >= tt.after
			})
			if r.failed != tt.wantFail {
				t.Errorf("failure %q, want %q", r.failed, tt.wantFail)
			}
		})
	}
}

func TestForDetailQuotesTheLastAnswer(t *testing.T) {
	r := &recorder{TB: t}
	n := 0
	ForDetail(r, 20*time.Millisecond, "ready", func() (bool, string) {
		n++
		return false, fmt.Sprintf("poll %d", n)
	})
	want := fmt.Sprintf("timed out after 20ms waiting for ready: poll %d", n)
	if r.failed != want {
		t.Errorf("failure %q, want %q", r.failed, want)
	}
}

func TestGo(t *testing.T) {
	tests := []struct {
		name     string
		run      func(ctx context.Context) error
		wantFail string
	}{
		{name: "stops", run: func(ctx context.Context) error { <-ctx.Done(); return nil }},
		{name: "fails", run: func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") },
			wantFail: "fails: boom"},
		{name: "hangs", run: func(ctx context.Context) error { select {} },
			wantFail: "hangs did not return within 20ms of cancel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			stop := Go(r, 20*time.Millisecond, tt.name, tt.run)
			stop()
			stop()
			if r.failed != tt.wantFail {
				t.Errorf("failure %q, want %q", r.failed, tt.wantFail)
			}
		})
	}
}

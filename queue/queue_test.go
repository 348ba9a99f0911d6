package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs q with workers until the test ends.
func start[K comparable](t *testing.T, q *Queue[K], workers int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, workers); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 5 * time.Millisecond},
		{1, 10 * time.Millisecond},
		{3, 40 * time.Millisecond},
		{12, 20480 * time.Millisecond},
		{13, 30 * time.Second},
		{1000, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := Backoff(tt.n); got != tt.want {
			t.Errorf("Backoff(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestDeduplicatesQueuedKeys(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		mu.Lock()
		calls[key]++
		mu.Unlock()
		return Result{}, nil
	}, quiet())
	for range 5 {
		q.Add("a")
		q.Add("b")
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	start(t, q, 2)
	wait.For(t, 10*time.Second, "both keys processed", func() bool { return q.Stats().Processed == 2 })
	mu.Lock()
	defer mu.Unlock()
	if calls["a"] != 1 || calls["b"] != 1 {
		t.Errorf("calls = %v, want one each", calls)
	}
}

func TestOneKeyNeverConcurrent(t *testing.T) {
	var running, maxRunning, total atomic.Int64
	release := make(chan struct{})
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		if total.Add(1) == 1 {
			<-release // hold the first run while the key is added again
		}
		running.Add(-1)
		return Result{}, nil
	}, quiet())
	start(t, q, 4)
	q.Add("k")
	wait.For(t, 10*time.Second, "first run", func() bool { return total.Load() == 1 })
	q.Add("k")
	q.Add("k")
	close(release)
	wait.For(t, 10*time.Second, "second run", func() bool { return total.Load() == 2 })
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("key ran %d times at once", m)
	}
}

func TestRetriesWithBackoffThenForgets(t *testing.T) {
	var calls atomic.Int64
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		if calls.Add(1) < 4 {
			return Result{}, errors.New("not yet")
		}
		return Result{}, nil
	}, quiet())
	start(t, q, 1)
	q.Add("k")
	wait.For(t, 10*time.Second, "success after retries", func() bool { return calls.Load() == 4 })
	wait.For(t, 10*time.Second, "back-off forgotten", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		_, ok := q.failures["k"]
		return !ok
	})
	if s := q.Stats(); s.Failed != 3 {
		t.Errorf("Failed = %d, want 3", s.Failed)
	}
}

func TestTerminalErrorNotRetried(t *testing.T) {
	var calls atomic.Int64
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		calls.Add(1)
		return Result{}, Terminal(errors.New("bad spec"))
	}, quiet())
	start(t, q, 1)
	q.Add("k")
	q.Add("marker")
	wait.For(t, 10*time.Second, "both processed", func() bool { return q.Stats().Processed == 2 })
	q.mu.Lock()
	pending := len(q.delayed) + len(q.fifo)
	q.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d keys pending after a terminal error", pending)
	}
}

func TestPanicRecoveredAndCounted(t *testing.T) {
	var calls atomic.Int64
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return Result{}, nil
	}, quiet())
	start(t, q, 1)
	q.Add("k")
	wait.For(t, 10*time.Second, "retry after panic", func() bool { return calls.Load() == 2 })
	if s := q.Stats(); s.Panics != 1 || s.Failed != 1 {
		t.Errorf("Stats = %+v, want 1 panic, 1 failure", s)
	}
}

func TestAddAfter(t *testing.T) {
	got := make(chan string, 10)
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		got <- key
		return Result{}, nil
	}, quiet())
	start(t, q, 1)
	before := time.Now()
	q.AddAfter("late", time.Hour)
	q.AddAfter("late", 20*time.Millisecond) // the shorter delay wins
	q.AddAfter("now", 0)
	if k := <-got; k != "now" {
		t.Fatalf("first key = %q, want now", k)
	}
	select {
	case k := <-got:
		if k != "late" {
			t.Fatalf("second key = %q, want late", k)
		}
		if time.Since(before) < 20*time.Millisecond {
			t.Errorf("delayed key ran before its delay")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("delayed key never ran")
	}
}

func TestShutDownStopsRun(t *testing.T) {
	q := New("t", func(ctx context.Context, key string) (Result, error) { return Result{}, nil }, quiet())
	done := make(chan struct{})
	go func() { q.Run(context.Background(), 3); close(done) }()
	q.ShutDown()
	q.ShutDown()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ShutDown")
	}
	q.Add("k")
	if q.Len() != 0 {
		t.Errorf("Add after ShutDown queued a key")
	}
}

func TestWithBackoffBoundsRetries(t *testing.T) {
	tests := []struct {
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{time.Second, 5 * time.Minute, 0, time.Second},
		{time.Second, 5 * time.Minute, 3, 8 * time.Second},
		{time.Second, 5 * time.Minute, 20, 5 * time.Minute},
		{10 * time.Millisecond, 100 * time.Millisecond, 4, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := backoff(tt.base, tt.max, tt.n); got != tt.want {
			t.Errorf("backoff(%v, %v, %d) = %v, want %v", tt.base, tt.max, tt.n, got, tt.want)
		}
	}
	q := New("t", func(context.Context, string) (Result, error) { return Result{}, nil }, nil).WithBackoff(time.Second, time.Minute)
	if q.base != time.Second || q.max != time.Minute {
		t.Errorf("WithBackoff did not set the bounds: %v, %v", q.base, q.max)
	}
}

func TestResultRequeues(t *testing.T) {
	tests := []struct {
		name  string
		res   Result
		err   error
		delay time.Duration // least time before the second call
	}{
		{"requeue at once", Result{Requeue: true}, nil, 0},
		{"requeue after", Result{RequeueAfter: 30 * time.Millisecond}, nil, 30 * time.Millisecond},
		{"terminal error still requeues after", Result{RequeueAfter: 30 * time.Millisecond}, Terminal(errors.New("bad")), 30 * time.Millisecond},
		{"error retries sooner than requeue after", Result{RequeueAfter: time.Hour}, errors.New("not yet"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make(chan time.Time, 10)
			var n atomic.Int64
			q := New("t", func(ctx context.Context, key int) (Result, error) {
				calls <- time.Now()
				if n.Add(1) == 1 {
					return tt.res, tt.err
				}
				return Result{}, nil
			}, quiet())
			start(t, q, 1)
			q.Add(7)
			var first time.Time
			select {
			case first = <-calls:
			case <-time.After(10 * time.Second):
				t.Fatal("key never ran")
			}
			select {
			case second := <-calls:
				if d := second.Sub(first); d < tt.delay {
					t.Errorf("key came back after %v, want at least %v", d, tt.delay)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("key never came back")
			}
		})
	}
}

func TestNoResultNoRequeue(t *testing.T) {
	var calls atomic.Int64
	q := New("t", func(ctx context.Context, key string) (Result, error) {
		calls.Add(1)
		return Result{}, nil
	}, quiet())
	start(t, q, 1)
	q.Add("k")
	q.Add("marker")
	wait.For(t, 10*time.Second, "both processed", func() bool { return q.Stats().Processed == 2 })
	q.mu.Lock()
	pending := len(q.delayed) + len(q.fifo)
	q.mu.Unlock()
	if pending != 0 || calls.Load() != 2 {
		t.Errorf("%d keys pending, %d calls; want none pending, 2 calls", pending, calls.Load())
	}
}

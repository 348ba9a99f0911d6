package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueueDeduplicates(t *testing.T) {
	q := newWorkQueue(time.Millisecond, time.Second)
	q.add("a")
	q.add("b")
	q.add("a")
	var got []string
	for range 2 {
		k, ok := q.get()
		if !ok {
			t.Fatal("queue closed")
		}
		got = append(got, k)
		q.done(k, nil)
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("got %v, want [a b]", got)
	}
	q.mu.Lock()
	left := len(q.fifo)
	q.mu.Unlock()
	if left != 0 {
		t.Errorf("%d keys left, want 0", left)
	}
}

func TestQueueRequeuesKeyAddedWhileProcessing(t *testing.T) {
	q := newWorkQueue(time.Millisecond, time.Second)
	q.add("a")
	k, _ := q.get()
	q.add("a") // while processing
	q.mu.Lock()
	if len(q.fifo) != 0 {
		t.Error("a key being processed was handed out again")
	}
	q.mu.Unlock()
	q.done(k, nil)
	if k2, ok := q.get(); !ok || k2 != "a" {
		t.Errorf("get = %q, %v; want a again", k2, ok)
	}
}

func TestQueueNeverRunsAKeyTwiceAtOnce(t *testing.T) {
	q := newWorkQueue(time.Millisecond, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var active, maxActive, calls atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		q.run(ctx, 4, func(ctx context.Context, key string) error {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			for range 1000 {
				q.add(key) // keep re-adding while processing
			}
			active.Add(-1)
			calls.Add(1)
			return nil
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	q.add("k")
	waitFor(t, "several runs", func() bool { return calls.Load() >= 20 })
	if m := maxActive.Load(); m != 1 {
		t.Errorf("key ran %d times at once, want 1", m)
	}
}

func TestQueueBacksOffFailures(t *testing.T) {
	q := newWorkQueue(time.Second, 5*time.Minute)
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 50: 5 * time.Minute} {
		if got := q.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}

	q = newWorkQueue(5*time.Millisecond, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		q.run(ctx, 2, func(ctx context.Context, key string) error {
			if calls.Add(1) < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	q.add("k")
	waitFor(t, "third attempt", func() bool { return calls.Load() == 3 })
	waitFor(t, "failures forgotten", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.failures["k"] == 0 && !q.processing["k"]
	})
}

func TestQueueRecoversPanics(t *testing.T) {
	q := newWorkQueue(time.Millisecond, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		q.run(ctx, 1, func(ctx context.Context, key string) error {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return nil
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	q.add("k")
	waitFor(t, "retry after panic", func() bool { return calls.Load() >= 2 })
}

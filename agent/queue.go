package agent

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// workQueue holds instance keys (project/name) waiting to be reconciled.
// It drops duplicates, never hands one key to two workers at once (a key
// added while it is processed runs again afterwards) and retries failed
// keys with a per-key exponential back-off:
//
//	add ─▶ queued ─▶ processing ─┬─▶ done(nil): back-off forgotten
//	          ▲                  └─▶ done(err): added again after back-off
//	          └── add while processing: queued again when done
type workQueue struct {
	base, max time.Duration

	mu         sync.Mutex
	cond       *sync.Cond
	fifo       []string
	queued     map[string]bool // in fifo, or to be queued again when done
	processing map[string]bool
	failures   map[string]int
	timers     map[string]*time.Timer
	closed     bool
}

// newWorkQueue returns a queue whose failed keys wait base, 2×base, … up
// to max before they run again.
func newWorkQueue(base, max time.Duration) *workQueue {
	q := &workQueue{
		base:       base,
		max:        max,
		queued:     map[string]bool{},
		processing: map[string]bool{},
		failures:   map[string]int{},
		timers:     map[string]*time.Timer{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues key unless it is queued already.
func (q *workQueue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *workQueue) addLocked(key string) {
	if q.closed || q.queued[key] {
		return
	}
	q.queued[key] = true
	if q.processing[key] {
		return // queued again by done
	}
	q.fifo = append(q.fifo, key)
	q.cond.Signal()
}

// get blocks until a key is ready or the queue is closed (ok false).
func (q *workQueue) get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.fifo) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key, q.fifo = q.fifo[0], q.fifo[1:]
	delete(q.queued, key)
	q.processing[key] = true
	return key, true
}

// done ends the processing of key. A nil err forgets its failures; an
// error schedules it again after its back-off.
func (q *workQueue) done(key string, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if err == nil {
		delete(q.failures, key)
		if t, ok := q.timers[key]; ok {
			t.Stop()
			delete(q.timers, key)
		}
	} else if !q.closed {
		q.failures[key]++
		q.scheduleLocked(key, q.backoff(q.failures[key]))
	}
	if q.queued[key] && !q.closed {
		q.fifo = append(q.fifo, key)
		q.cond.Signal()
	}
}

// backoff returns the delay before the n-th retry (n ≥ 1).
func (q *workQueue) backoff(n int) time.Duration {
	d := q.base
	for i := 1; i < n && d < q.max; i++ {
		d *= 2
	}
	return min(d, q.max)
}

// scheduleLocked adds key after d unless an earlier retry is pending.
func (q *workQueue) scheduleLocked(key string, d time.Duration) {
	if t, ok := q.timers[key]; ok {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.timers[key] == t {
			delete(q.timers, key)
		}
		q.addLocked(key)
	})
	q.timers[key] = t
}

// close wakes all workers and drops pending keys and retries.
func (q *workQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}

// run starts n workers calling fn for each key until ctx ends, then
// closes the queue and waits for the workers.
func (q *workQueue) run(ctx context.Context, n int, fn func(ctx context.Context, key string) error) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				key, ok := q.get()
				if !ok {
					return
				}
				q.done(key, safeCall(ctx, key, fn))
			}
		})
	}
	<-ctx.Done()
	q.close()
	wg.Wait()
}

// safeCall calls fn and turns a panic into an error, so one bad instance
// cannot take the agent down.
func safeCall(ctx context.Context, key string, fn func(ctx context.Context, key string) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reconcile %s panicked: %v\n%s", key, r, debug.Stack())
		}
	}()
	return fn(ctx, key)
}

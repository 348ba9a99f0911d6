// Package queue is the work queue of the controllers and the agent: it
// holds keys (of any comparable type) to reconcile, drops duplicates,
// never hands one key to two workers at once, retries failed keys with
// per-key exponential back-off and recovers (and counts) panics in the
// handler.
//
// A handler says what it wants next in its Result rather than adding to
// its own queue: a RequeueAfter looks at the key again once that time has
// passed, an error retries it with back-off.
//
// A key added while it is being processed is queued again once the worker
// is done with it, so no change is ever missed and no key runs twice
// concurrently:
//
//	Add ─▶ queued ─▶ processing ─┬─▶ done (success: back-off forgotten;
//	          ▲                  │         Result.RequeueAfter honoured)
//	          │                  └─▶ failed ─▶ AddAfter(back-off)
//	          └───── Add while processing: queued again after Done
package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Default back-off bounds for failed keys (see WithBackoff).
const (
	// BaseDelay is the first retry delay of a failed key.
	BaseDelay = 5 * time.Millisecond
	// MaxDelay bounds the retry delay of a key that keeps failing.
	MaxDelay = 30 * time.Second
)

// Result is what a handler wants done with its key next.
type Result struct {
	// Requeue asks for the key again at once (when RequeueAfter is zero).
	Requeue bool
	// RequeueAfter asks for the key again once it has passed.
	RequeueAfter time.Duration
}

// Handler reconciles one key. A returned error retries the key with
// back-off unless it is marked Terminal; the Result is honoured as well,
// so the key comes back at the sooner of the two.
type Handler[K comparable] func(ctx context.Context, key K) (Result, error)

// terminalError marks an error that retrying cannot fix.
type terminalError struct{ err error }

func (e terminalError) Error() string { return e.err.Error() }
func (e terminalError) Unwrap() error { return e.err }

// Terminal wraps err so that the queue logs it and does not retry the key.
func Terminal(err error) error { return terminalError{err} }

// Stats are counters of a queue's life.
type Stats struct {
	// Processed counts finished handler calls, counted once the key's
	// retry or requeue (if any) is scheduled, so that a caller that sees
	// the count sees their effects too.
	Processed int64
	// Failed counts handler calls that returned an error or panicked.
	Failed int64
	// Panics counts handler calls that panicked.
	Panics int64
}

// Queue is a deduplicating, rate-limited work queue of keys K. The zero
// value is not usable; call New.
type Queue[K comparable] struct {
	name      string
	handler   Handler[K]
	log       *slog.Logger
	base, max time.Duration // back-off bounds

	mu         sync.Mutex
	cond       *sync.Cond
	fifo       []K
	queued     map[K]bool // in fifo, or to be re-queued after processing
	processing map[K]bool
	failures   map[K]int
	delayed    delayHeap[K]
	delayedAt  map[K]time.Time // earliest pending AddAfter per key
	wake       chan struct{}   // pokes the delay loop
	shutdown   bool

	processed, failed, panics atomic.Int64
}

// New returns a queue whose workers call handler. log may be nil.
func New[K comparable](name string, handler Handler[K], log *slog.Logger) *Queue[K] {
	if log == nil {
		log = slog.Default()
	}
	q := &Queue[K]{
		name:       name,
		handler:    handler,
		log:        log.With("queue", name),
		queued:     map[K]bool{},
		processing: map[K]bool{},
		failures:   map[K]int{},
		delayedAt:  map[K]time.Time{},
		wake:       make(chan struct{}, 1),
		base:       BaseDelay,
		max:        MaxDelay,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// WithBackoff sets the retry delays of failed keys: base after the first
// failure, doubling up to max. Call it before Run.
func (q *Queue[K]) WithBackoff(base, max time.Duration) *Queue[K] {
	q.base, q.max = base, max
	return q
}

// Add queues key unless it is queued already. Adding after ShutDown does
// nothing.
func (q *Queue[K]) Add(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue[K]) addLocked(key K) {
	if q.shutdown || q.queued[key] {
		return
	}
	q.queued[key] = true
	if q.processing[key] {
		return // queued again by done
	}
	q.fifo = append(q.fifo, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed. A shorter pending delay for the
// same key wins; d <= 0 adds at once. It is for event sources that
// debounce; a handler asks for its own key again through its Result.
func (q *Queue[K]) AddAfter(key K, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	at := time.Now().Add(d)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if prev, ok := q.delayedAt[key]; ok && !prev.After(at) {
		return
	}
	q.delayedAt[key] = at
	heap.Push(&q.delayed, delayed[K]{key: key, at: at})
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// AddRateLimited queues key after its back-off (the base delay doubling
// per failure up to the maximum) and counts a failure for it. It is for
// work that fails after its handler returned (a write handed to a pool);
// a handler's error is retried so by the queue itself.
func (q *Queue[K]) AddRateLimited(key K) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	q.AddAfter(key, backoff(q.base, q.max, n))
}

// Forget clears the back-off of key, after it succeeded.
func (q *Queue[K]) Forget(key K) {
	q.mu.Lock()
	delete(q.failures, key)
	q.mu.Unlock()
}

// Backoff returns the default delay before retry number n+1 (n failures
// so far).
func Backoff(n int) time.Duration { return backoff(BaseDelay, MaxDelay, n) }

// backoff is base doubled n times, at most max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	return d
}

// Len returns the number of keys waiting to be processed now (delayed keys
// are not counted).
func (q *Queue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fifo)
}

// Stats returns the queue's counters.
func (q *Queue[K]) Stats() Stats {
	return Stats{Processed: q.processed.Load(), Failed: q.failed.Load(), Panics: q.panics.Load()}
}

// ShutDown stops the queue: workers finish their current key and return,
// queued keys are dropped. It is safe to call more than once.
func (q *Queue[K]) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	q.shutdown = true
	q.cond.Broadcast()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run processes keys with the given number of workers until ctx ends or
// the queue is shut down, then shuts the queue down and waits for the
// workers to finish.
func (q *Queue[K]) Run(ctx context.Context, workers int) {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		q.ShutDown()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.delayLoop(ctx)
	}()
	var workersWG sync.WaitGroup
	for range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			for {
				key, ok := q.get()
				if !ok {
					return
				}
				q.process(ctx, key)
			}
		}()
	}
	workersWG.Wait()
	cancel()
	wg.Wait()
}

// get blocks for the next key; ok is false after shutdown.
func (q *Queue[K]) get() (key K, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.fifo) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return key, false
	}
	key = q.fifo[0]
	var zero K
	q.fifo[0] = zero
	q.fifo = q.fifo[1:]
	delete(q.queued, key)
	q.processing[key] = true
	return key, true
}

// done releases key and queues it again if it was added meanwhile.
func (q *Queue[K]) done(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.queued[key] && !q.shutdown {
		q.fifo = append(q.fifo, key)
		q.cond.Signal()
	}
}

// process runs the handler for key, recovering panics, retrying errors
// and honouring the handler's Result.
func (q *Queue[K]) process(ctx context.Context, key K) {
	defer q.done(key)
	defer q.processed.Add(1)
	res, err := q.call(ctx, key)
	if ctx.Err() != nil {
		// Shutting down: whoever runs next reconciles the key again.
		return
	}
	switch {
	case res.RequeueAfter > 0:
		q.AddAfter(key, res.RequeueAfter)
	case res.Requeue:
		q.Add(key)
	}
	switch {
	case err == nil:
		q.Forget(key)
	case errors.As(err, new(terminalError)):
		q.failed.Add(1)
		q.Forget(key)
		q.log.Error("reconcile failed, not retrying", "key", key, "err", err)
	default:
		q.failed.Add(1)
		q.log.Debug("reconcile failed, retrying", "key", key, "err", err)
		q.AddRateLimited(key)
	}
}

// call runs the handler and turns a panic into an error.
func (q *Queue[K]) call(ctx context.Context, key K) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			q.log.Error("reconcile panicked", "key", key, "panic", r, "stack", string(debug.Stack()))
			res, err = Result{}, fmt.Errorf("reconcile %v panicked: %v", key, r)
		}
	}()
	return q.handler(ctx, key)
}

// delayLoop moves delayed keys into the queue when their time comes.
func (q *Queue[K]) delayLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		now := time.Now()
		for q.delayed.Len() > 0 && !q.delayed[0].at.After(now) {
			d := heap.Pop(&q.delayed).(delayed[K])
			if at, ok := q.delayedAt[d.key]; ok && at.Equal(d.at) {
				delete(q.delayedAt, d.key)
				q.addLocked(d.key)
			}
		}
		next := time.Hour
		if q.delayed.Len() > 0 {
			next = q.delayed[0].at.Sub(now)
		}
		stop := q.shutdown
		q.mu.Unlock()
		if stop {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// delayed is a key waiting for its time.
type delayed[K comparable] struct {
	key K
	at  time.Time
}

// delayHeap orders delayed keys by time.
type delayHeap[K comparable] []delayed[K]

func (h delayHeap[K]) Len() int           { return len(h) }
func (h delayHeap[K]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h delayHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap[K]) Push(x any)        { *h = append(*h, x.(delayed[K])) }
func (h *delayHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

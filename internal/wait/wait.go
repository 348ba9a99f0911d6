// Package wait lets tests wait for a condition instead of sleeping: it
// polls the condition until it holds and fails the test, saying what it
// waited for, once a deadline passes. It also runs a loop in the
// background and waits, within a deadline, for it to stop.
package wait

import (
	"context"
	"sync"
	"testing"
	"time"
)

// maxInterval is the longest pause between two polls; the first polls
// come quicker so that fast conditions do not slow the tests down.
const maxInterval = 20 * time.Millisecond

// For polls cond until it returns true, failing tb if it has not after
// timeout. what names the condition in the failure.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	ForDetail(tb, timeout, what, func() (bool, string) { return cond(), "" })
}

// ForDetail is For with a condition that also says what it saw; the
// failure quotes its last answer.
func ForDetail(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if detail != "" {
				tb.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
			} else {
				tb.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			return
		}
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}

// Go runs run in a goroutine until the returned stop is called or the
// test ends. stop cancels run's context and waits up to timeout for run to
// return, failing tb if it returns an error or does not return; calling
// it again does nothing. what names run in the failures.
func Go(tb testing.TB, timeout time.Duration, what string, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("%s: %v", what, err)
				}
			case <-time.After(timeout):
				tb.Errorf("%s did not return within %v of cancel", what, timeout)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

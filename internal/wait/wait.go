// Package wait lets tests wait for a condition instead of sleeping: it
// polls the condition until it holds and fails the test, saying what it
// waited for, once a deadline passes.
package wait

import (
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

package session

import (
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{5, time.Second}, {6, 2 * time.Second}, {7, 4 * time.Second}, {14, 512 * time.Second},
		{15, MaxLockout}, {100, MaxLockout},
	} {
		if got := lockout(tc.n); got != tc.want {
			t.Errorf("lockout(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter()
	l.now = func() time.Time { return now }
	for i := range FreeFailures {
		if w := l.Attempt("user:a", "addr:1"); w != 0 {
			t.Fatalf("attempt %d refused: wait %s", i+1, w)
		}
	}
	if w := l.Attempt("user:b", "addr:1"); w != FirstLockout {
		t.Fatalf("after %d failures: wait %s for the address, want %s", FreeFailures, w, FirstLockout)
	}
	if w := l.Attempt("user:b", "addr:2"); w != 0 {
		t.Fatalf("another user from another address waits %s", w)
	}
	now = now.Add(FirstLockout)
	if w := l.Attempt("user:a"); w != 0 {
		t.Fatalf("after the lock-out: wait %s", w)
	}
	if w := l.Attempt("user:a"); w != 2*FirstLockout {
		t.Fatalf("after one more failure: wait %s, want it doubled", w)
	}
	l.Succeed("user:a")
	for i := range FreeFailures {
		if w := l.Attempt("user:a"); w != 0 {
			t.Fatalf("attempt %d after a success refused: wait %s", i+1, w)
		}
	}
}

func TestLimiterPrunes(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := NewLimiter()
	l.now = func() time.Time { return now }
	l.keys["old"] = &failures{n: 1, last: now.Add(-2 * MaxLockout)}
	l.keys["locked"] = &failures{n: 9, until: now.Add(time.Minute), last: now}
	l.prune(now)
	if _, ok := l.keys["old"]; ok {
		t.Error("an old key was kept")
	}
	if _, ok := l.keys["locked"]; !ok {
		t.Error("a locked-out key was forgotten")
	}
}

package session

import (
	"sync"
	"time"
)

// Sign-in lock-out: after FreeFailures failed sign-ins in a row for one
// key, each further attempt must wait FirstLockout, doubling with every
// failure up to MaxLockout. A successful sign-in forgets the key.
const (
	FreeFailures = 5
	FirstLockout = time.Second
	MaxLockout   = 15 * time.Minute
)

// maxKeys bounds the keys a Limiter remembers; past it, keys whose
// lock-out ended are forgotten first.
const maxKeys = 100_000

// Limiter counts failed sign-ins per key (a user name, a client address).
// It lives in one server's memory: with several servers, each counts the
// attempts it serves. It is safe for concurrent use.
type Limiter struct {
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n     int
	until time.Time // no attempt before
	last  time.Time
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{now: time.Now, keys: map[string]*failures{}}
}

// Attempt starts a sign-in for keys. While any key is locked out it
// returns how long the longest lock-out lasts, and the attempt must be
// refused. Otherwise it returns 0 and counts the attempt as a failure at
// once, so that attempts made in parallel cannot slip past the count;
// Succeed clears it when the attempt succeeds.
func (l *Limiter) Attempt(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if f := l.keys[k]; f != nil && f.until.After(now) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	if len(l.keys) >= maxKeys {
		l.prune(now)
	}
	for _, k := range keys {
		f := l.keys[k]
		if f == nil {
			f = &failures{}
			l.keys[k] = f
		}
		f.n++
		f.last = now
		if f.n >= FreeFailures {
			f.until = now.Add(lockout(f.n))
		}
	}
	return 0
}

// Succeed forgets the failures of the keys.
func (l *Limiter) Succeed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.keys, k)
	}
}

// lockout is the wait after the n-th failure in a row (n >= FreeFailures).
func lockout(n int) time.Duration {
	d := FirstLockout
	for i := FreeFailures; i < n && d < MaxLockout; i++ {
		d *= 2
	}
	return min(d, MaxLockout)
}

// prune forgets keys that are not locked out and failed last more than
// MaxLockout ago, then, if still full, every key not locked out.
func (l *Limiter) prune(now time.Time) {
	for k, f := range l.keys {
		if !f.until.After(now) && now.Sub(f.last) > MaxLockout {
			delete(l.keys, k)
		}
	}
	if len(l.keys) < maxKeys {
		return
	}
	for k, f := range l.keys {
		if !f.until.After(now) {
			delete(l.keys, k)
		}
	}
}

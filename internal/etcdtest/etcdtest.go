// Package etcdtest starts a real embedded etcd for tests and gives them
// the few helpers that go with it: a quiet logger, a leader guard the
// test can revoke and a presence heartbeat.
//
// It does not import the store package, so the store's own tests can use
// it; callers that want a store wrap the client with store.NewEtcd.
package etcdtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/freeport"
)

// startTimeout bounds how long an embedded etcd may take to become ready.
const startTimeout = time.Minute

// Quiet returns a logger that drops everything.
func Quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// FreeURL returns an http URL on a free loopback port (see package
// freeport).
func FreeURL(tb testing.TB) string {
	tb.Helper()
	return "http://" + freeport.Addr(tb)
}

// Start runs an embedded etcd in a fresh temporary directory until the
// test ends and returns it.
func Start(tb testing.TB) *etcdembed.Server {
	tb.Helper()
	return StartIn(tb, tb.TempDir())
}

// startAttempts bounds the tries to start etcd on ports that were taken
// between FreeURL and etcd's listen.
const startAttempts = 5

// StartIn runs an embedded etcd with its data in dir until the test ends
// (or the caller closes it) and returns it. Starting again in the same
// directory finds the data written before.
//
// A port free a moment ago may be taken by the time etcd listens on it
// (by another test process, or as the local end of a connection), so a
// start refused with EADDRINUSE is tried again on other ports.
func StartIn(tb testing.TB, dir string) *etcdembed.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var (
		srv *etcdembed.Server
		err error
	)
	for range startAttempts {
		srv, err = etcdembed.Start(ctx, etcdembed.Config{
			DataDir:   dir,
			ClientURL: FreeURL(tb),
			PeerURL:   FreeURL(tb),
			Logger:    Quiet(),
		})
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// Client runs an embedded etcd until the test ends and returns a client
// of it.
func Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return Start(tb).Client()
}

// Guard is a store.Guard on a key the test owns.
type Guard struct {
	key string
	rev int64
}

// Key implements store.Guard.
func (g Guard) Key() string { return g.key }

// Revision implements store.Guard.
func (g Guard) Revision() int64 { return g.rev }

// NewGuard creates key and returns a guard that holds until Revoke.
func NewGuard(tb testing.TB, cli *clientv3.Client, key string) Guard {
	tb.Helper()
	resp, err := cli.Put(context.Background(), key, "leader")
	if err != nil {
		tb.Fatalf("put guard key: %v", err)
	}
	return Guard{key: key, rev: resp.Header.Revision}
}

// Revoke deletes the guard key: guarded writes fail from now on.
func (g Guard) Revoke(tb testing.TB, cli *clientv3.Client) {
	tb.Helper()
	if _, err := cli.Delete(context.Background(), g.key); err != nil {
		tb.Fatalf("delete guard key: %v", err)
	}
}

// Renewer keeps a name alive for a time; store.Presence is one.
type Renewer interface {
	Renew(ctx context.Context, name string, ttl time.Duration) error
}

// Heartbeat keeps name alive on p, with a two-second lease renewed every
// 300 ms, until the returned stop is called or the test ends.
func Heartbeat(tb testing.TB, p Renewer, name string) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	renew := func() error { return p.Renew(ctx, name, 2*time.Second) }
	if err := renew(); err != nil {
		cancel()
		tb.Fatalf("renew %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = renew() // a missed renewal shows as the name expiring
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(stop)
	return stop
}

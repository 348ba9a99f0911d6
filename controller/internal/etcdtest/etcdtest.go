// Package etcdtest starts a real embedded etcd for the controllers' tests
// and gives them small helpers: a store over it, a leader guard they can
// revoke, and a wait-for-condition loop.
package etcdtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Quiet returns a logger that drops everything below Error.
func Quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freeURL returns an http URL on a loopback port that was free a moment ago.
func freeURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// startAttempts bounds the tries to start etcd on ports that were taken
// between freeURL and etcd's listen.
const startAttempts = 5

// Start runs an embedded etcd in a temporary directory for the rest of the
// test and returns a client and a store over it.
//
// A port free a moment ago may be taken by the time etcd listens on it
// (by another test process, or as the local end of a connection), so a
// start refused with EADDRINUSE is tried again on other ports.
func Start(tb testing.TB) (*clientv3.Client, store.Interface) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		srv *etcdembed.Server
		err error
	)
	for range startAttempts {
		srv, err = etcdembed.Start(ctx, etcdembed.Config{
			DataDir:   tb.TempDir(),
			ClientURL: freeURL(tb),
			PeerURL:   freeURL(tb),
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
	return srv.Client(), store.NewEtcd(srv.Client())
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

// Eventually polls cond every few milliseconds until it holds, failing tb
// after timeout.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package cephtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// startTimeout bounds a cluster's start (about 20 s on an idle machine).
const startTimeout = 4 * time.Minute

// shared is the test binary's one shared cluster.
var shared struct {
	once    sync.Once
	cluster *Cluster
	dir     string
	err     error
}

// Need skips (or, under CI, fails) tb when the machine cannot run a
// cluster: not root, or the ceph packages are missing.
func Need(tb testing.TB) {
	tb.Helper()
	testenv.NeedRoot(tb)
	for _, b := range Binaries {
		testenv.NeedBinary(tb, b)
	}
}

// Shared returns the test binary's shared cluster, starting it on first
// use. Tests share its pool, so each uses image names of its own. The
// cluster runs until Main's m.Run returns (or the binary exits: the
// daemons die with it).
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	Need(tb)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "cephtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		shared.cluster, shared.err = startRetrying(ctx, shared.dir)
	})
	if shared.err != nil {
		tb.Fatalf("start the shared ceph cluster: %v", shared.err)
	}
	return shared.cluster
}

// Main runs a package's tests (call it from TestMain) and then stops the
// shared cluster, if one was started, and removes its directory.
//
//	func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	StopShared()
	return code
}

// StopShared stops the shared cluster, if one was started, and removes
// its directory. A package with a TestMain of its own (test/e2e) calls it
// after m.Run.
func StopShared() {
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			fmt.Fprintf(os.Stderr, "cephtest: remove %s: %v\n", shared.dir, err)
		}
	}
}

// New starts a cluster of the test's own, stopped when the test ends.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	Need(tb)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := startRetrying(ctx, tb.TempDir())
	if err != nil {
		tb.Fatalf("start a ceph cluster: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// startAttempts bounds the starts of a cluster: the monitor's port, free
// when chosen, may be taken before the monitor binds it.
const startAttempts = 2

// startRetrying starts a cluster in a fresh subdirectory of dir, again in
// another on failure.
func startRetrying(ctx context.Context, dir string) (*Cluster, error) {
	var errs []error
	for i := range startAttempts {
		sub := filepath.Join(dir, fmt.Sprintf("cluster%d", i))
		if err := os.Mkdir(sub, 0o700); err != nil {
			return nil, err
		}
		c, err := Start(ctx, sub)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// NewIn starts a cluster of the test's own in the network namespace at
// path netns, its daemons bound to addr there; it is stopped when the
// test ends.
func NewIn(tb testing.TB, netns, addr string) *Cluster {
	tb.Helper()
	Need(tb)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := StartIn(ctx, tb.TempDir(), netns, addr)
	if err != nil {
		tb.Fatalf("start a ceph cluster in %s: %v", netns, err)
	}
	tb.Cleanup(c.Stop)
	return c
}

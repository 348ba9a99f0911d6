package hollowtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/controller"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/store"
)

// pauseIdentity is the candidate that holds the controllers' leadership
// while they are paused; no server announces an address under it.
const pauseIdentity = "hollowtest-pause"

// pauseTTL is the session TTL of that candidate.
const pauseTTL = 5 * time.Second

// PauseControllers takes the controllers' leadership from the server, as
// a server of a control plane would, and returns once it holds it: the
// server's controllers (the scheduler among them) have stopped, and the
// API keeps serving. Instances created meanwhile stay Pending. Resume
// hands leadership back and returns when it did: the server's controllers
// then start from a full read of the store, as after a failover.
//
// The server is displaced the way a gone leader is (election's leader
// probe): this candidate revokes the server's session and queues first.
func (c *Cloud) PauseControllers(tb testing.TB, timeout time.Duration) (resume func()) {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatalf("pause controllers: etcd client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	leading := make(chan struct{})
	done := make(chan error, 1)
	gone := func(context.Context, string) bool { return true }
	go func() {
		done <- election.Run(ctx, cli, controller.DefaultElectionName, pauseIdentity, pauseTTL,
			func(lctx context.Context, _ store.Guard) {
				close(leading)
				<-lctx.Done()
			}, election.WithLeaderProbe(gone))
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("pause controllers: %v", err)
		}
		cli.Close()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-leading:
	case err := <-done:
		cancel()
		cli.Close()
		tb.Fatalf("pause controllers: the election ended: %v", err)
	case <-t.C:
		stop()
		tb.Fatalf("pause controllers: not leading after %v", timeout)
	}
	stopped := false
	resume = func() {
		if !stopped {
			stopped = true
			stop()
		}
	}
	tb.Cleanup(resume)
	return resume
}

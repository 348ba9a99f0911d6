package election

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// runProbing is runCandidate with a leader probe.
func runProbing(t *testing.T, cli *clientv3.Client, identity string, terms chan<- leaderTerm, probe Probe) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cli, "controllers", identity, time.Minute, func(ctx context.Context, g store.Guard) {
			terms <- leaderTerm{identity: identity, guard: g, ctx: ctx}
			<-ctx.Done()
		}, WithLeaderProbe(probe))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestProbeEndsGoneLeadersSession(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	terms := make(chan leaderTerm, 4)
	// a's session lives a minute and a keeps it alive: only the probe
	// can hand leadership over within the test's limits.
	runProbing(t, newClient(t, srv), "a", terms, func(context.Context, string) bool { return false })
	first := nextTerm(t, terms)
	if first.identity != "a" {
		t.Fatalf("first leader %q, want a", first.identity)
	}
	var probed atomic.Int32
	runProbing(t, newClient(t, srv), "b", terms, func(_ context.Context, id string) bool {
		probed.Add(1)
		return id == "a"
	})
	second := nextTerm(t, terms)
	if second.identity != "b" {
		t.Fatalf("after a was found gone %q leads, want b", second.identity)
	}
	waitDone(t, first.ctx, "the term of the leader found gone")
	if probed.Load() < probeStrikes {
		t.Errorf("b probed a %d times before taking over, want at least %d", probed.Load(), probeStrikes)
	}
	st := store.NewEtcd(srv.Client())
	_, err := st.WithGuard(first.guard).Create(ctx, &api.Host{Metadata: api.ObjectMeta{Name: "late"}}, store.CreateOptions{})
	if !errors.Is(err, store.ErrGuardFailed) {
		t.Fatalf("write of the leader found gone: %v, want ErrGuardFailed", err)
	}
	if _, err := st.WithGuard(second.guard).Create(ctx, &api.Host{Metadata: api.ObjectMeta{Name: "new"}}, store.CreateOptions{}); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
}

func TestProbeKeepsLiveLeader(t *testing.T) {
	srv := etcdtest.Start(t)
	terms := make(chan leaderTerm, 4)
	runProbing(t, newClient(t, srv), "a", terms, func(context.Context, string) bool { return false })
	first := nextTerm(t, terms)
	probes := make(chan string, 100)
	runProbing(t, newClient(t, srv), "b", terms, func(_ context.Context, id string) bool {
		select {
		case probes <- id:
		default:
		}
		return false
	})
	for range 2 * probeStrikes {
		select {
		case id := <-probes:
			if id != first.identity {
				t.Fatalf("b probed %q, want the leader %q", id, first.identity)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("b does not probe the leader")
		}
	}
	select {
	case tm := <-terms:
		t.Fatalf("%s took over from a leader its probe found alive", tm.identity)
	case <-first.ctx.Done():
		t.Fatal("the live leader's term ended")
	default:
	}
}

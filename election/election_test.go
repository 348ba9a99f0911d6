package election

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

const testTTL = time.Second

// newClient opens a client of its own, as a separate server would.
func newClient(t *testing.T, srv *etcdembed.Server) *clientv3.Client {
	t.Helper()
	cli, err := etcdembed.Connect(context.Background(), srv.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leaderTerm is one leadership term seen by a test candidate.
type leaderTerm struct {
	identity string
	guard    store.Guard
	ctx      context.Context
}

// candidate runs Run in the background and reports its terms.
type candidate struct {
	identity string
	cancel   context.CancelFunc
	done     chan error
}

func runCandidate(t *testing.T, cli *clientv3.Client, identity string, terms chan<- leaderTerm) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{identity: identity, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- Run(ctx, cli, "controllers", identity, testTTL, func(ctx context.Context, g store.Guard) {
			terms <- leaderTerm{identity: identity, guard: g, ctx: ctx}
			<-ctx.Done()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func nextTerm(t *testing.T, terms <-chan leaderTerm) leaderTerm {
	t.Helper()
	select {
	case tm := <-terms:
		return tm
	case <-time.After(15 * time.Second):
		t.Fatal("nobody was elected within 15s")
	}
	return leaderTerm{}
}

func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: context not cancelled within 15s", what)
	}
}

func TestFailoverOnCancel(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	if _, err := Leader(ctx, srv.Client(), "controllers"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader before any candidate: %v, want ErrNoLeader", err)
	}
	terms := make(chan leaderTerm, 4)
	cands := map[string]*candidate{
		"a": runCandidate(t, newClient(t, srv), "a", terms),
		"b": runCandidate(t, newClient(t, srv), "b", terms),
	}

	first := nextTerm(t, terms)
	if who, err := Leader(ctx, srv.Client(), "controllers"); err != nil || who != first.identity {
		t.Fatalf("Leader = %q, %v; want %q", who, err, first.identity)
	}
	st := store.NewEtcd(srv.Client())
	if _, err := st.WithGuard(first.guard).Create(ctx, &api.Host{Metadata: api.ObjectMeta{Name: "h1"}}, store.CreateOptions{}); err != nil {
		t.Fatalf("leader's guarded write: %v", err)
	}

	// The leader stops; the other takes over.
	cands[first.identity].cancel()
	waitDone(t, first.ctx, "old leader's term")
	select {
	case err := <-cands[first.identity].done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
		cands[first.identity].done <- nil // for cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	second := nextTerm(t, terms)
	if second.identity == first.identity {
		t.Fatalf("%s led twice", first.identity)
	}
	if who, err := Leader(ctx, srv.Client(), "controllers"); err != nil || who != second.identity {
		t.Fatalf("Leader = %q, %v; want %q", who, err, second.identity)
	}

	// The deposed leader's guarded writes are refused; the new leader's pass.
	h := &api.Host{}
	if err := st.Get(ctx, api.HostKind, "", "h1", h); err != nil {
		t.Fatal(err)
	}
	if err := st.WithGuard(first.guard).Update(ctx, h); !errors.Is(err, store.ErrGuardFailed) {
		t.Fatalf("deposed leader's write: %v, want ErrGuardFailed", err)
	}
	if err := st.WithGuard(second.guard).Update(ctx, h); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
}

func TestFailoverOnLostSession(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	terms := make(chan leaderTerm, 4)
	aCli := newClient(t, srv)
	runCandidate(t, aCli, "a", terms)
	first := nextTerm(t, terms)
	if first.identity != "a" {
		t.Fatalf("first leader %q, want a", first.identity)
	}
	runCandidate(t, newClient(t, srv), "b", terms)

	// a loses its connection to etcd: it must stop leading, and b must
	// take over once a's lease expires.
	aCli.Close()
	waitDone(t, first.ctx, "leader without etcd")
	second := nextTerm(t, terms)
	if second.identity != "b" {
		t.Fatalf("after a lost its session %q leads, want b", second.identity)
	}
	st := store.NewEtcd(srv.Client())
	_, err := st.WithGuard(first.guard).Create(ctx, &api.Host{Metadata: api.ObjectMeta{Name: "late"}}, store.CreateOptions{})
	if !errors.Is(err, store.ErrGuardFailed) {
		t.Fatalf("write with lost leadership: %v, want ErrGuardFailed", err)
	}
}

func TestCampaignsAgainAfterLeadReturns(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	terms := make(chan store.Guard, 4)
	done := make(chan error, 1)
	var elected atomic.Int32
	go func() {
		done <- Run(ctx, srv.Client(), "solo", "me", testTTL, func(lctx context.Context, g store.Guard) {
			terms <- g
			if elected.Add(1) == 1 {
				return // step down once
			}
			<-lctx.Done()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var guards []store.Guard
	for range 2 {
		select {
		case g := <-terms:
			guards = append(guards, g)
		case <-time.After(15 * time.Second):
			t.Fatalf("elected %d times, want 2", len(guards))
		}
	}
	if guards[0].Revision() == guards[1].Revision() {
		t.Fatalf("two terms share revision %d", guards[0].Revision())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		done <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	// Stepping down on return deletes the key at once.
	if _, err := Leader(context.Background(), srv.Client(), "solo"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader after Run ended: %v, want ErrNoLeader", err)
	}
}

func TestRunInvalid(t *testing.T) {
	lead := func(context.Context, store.Guard) {}
	if err := Run(context.Background(), nil, "", "x", 0, lead); err == nil {
		t.Error("empty name accepted")
	}
	if err := Run(context.Background(), nil, "a/b", "x", 0, lead); err == nil {
		t.Error("name with slash accepted")
	}
	if err := Run(context.Background(), nil, "ok", "x", 0, nil); err == nil {
		t.Error("nil lead accepted")
	}
}

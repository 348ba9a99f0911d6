package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/controller"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// Pacing of BenchmarkLeaderFailover.
const (
	// failoverNodes is the size of the control plane.
	failoverNodes = 3
	// createPause is the pause after a create answered with an error.
	createPause = 50 * time.Millisecond
	// attemptTimeout is how long one create may take before it is given
	// up and the next sent.
	attemptTimeout = 10 * time.Second
	// observeEvery is how often etcd's leader is looked up for the log.
	observeEvery = 50 * time.Millisecond
	// electionPrefix is where elections keep their keys
	// (docs/architecture.md, "State and truth").
	electionPrefix = "/ouro/election/"
	// failoverDeadline bounds each phase of an iteration.
	failoverDeadline = time.Minute
)

// BenchmarkLeaderFailover measures how long the control plane takes to
// accept writes, and to place an instance, after the node holding both the
// controller leader and the etcd leader dies. Each iteration builds a
// fresh control plane of three nodes, each an etcd member (Debian's etcd)
// and an `ouro server` on the whole etcd cluster, moves etcd's leadership
// to the node whose server leads the controllers, and joins one hollow
// host through another node's server. Then it SIGKILLs that node's server
// and etcd member at once and, from that moment, creates new instances
// (tolerating the hollow taint) one at a time through the third node's
// server until one is accepted, and polls that instance until it has
// status.host, which only the new controller leader's scheduler can set.
// It reports the means in seconds:
//
//   - accepted-s: from the kill until the first create was accepted;
//   - placed-s: from the kill until that instance had status.host.
//
// Each iteration logs where the time went: when etcd had a leader again
// and when the dead server's election key went.
//
//	go test ./test/e2e -run '^$' -bench LeaderFailover -benchtime 1x
func BenchmarkLeaderFailover(b *testing.B) {
	etcdBin := testenv.NeedBinary(b, "etcd")
	var accepted, placed time.Duration
	for i := range b.N {
		b.StopTimer()
		r := runFailover(b, etcdBin, i)
		accepted += r.accepted
		placed += r.placed
	}
	n := float64(b.N)
	b.ReportMetric(accepted.Seconds()/n, "accepted-s")
	b.ReportMetric(placed.Seconds()/n, "placed-s")
}

// failoverResult is what one iteration measured, each from the kill.
type failoverResult struct {
	accepted, placed time.Duration
}

// runFailover builds a cloud, kills its leading node and measures; the
// timer runs only from the kill until the placement.
func runFailover(b *testing.B, etcdBin string, iter int) failoverResult {
	b.Helper()
	c := newHACloud(b, etcdBin, failoverNodes)
	defer c.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*failoverDeadline)
	defer cancel()

	var dead *haNode
	wait.ForDetail(b, failoverDeadline, "a controller leader", func() (bool, string) {
		var err error
		dead, err = c.controllerLeader(ctx)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	var survivors []*haNode
	for _, nd := range c.nodes {
		if nd != dead {
			survivors = append(survivors, nd)
		}
	}
	// The hosts' agent talks to one surviving server, the measuring client
	// to the other.
	agentNode, apiNode := survivors[0], survivors[1]
	hollowtest.MakeImage(b, c.client(apiNode))
	c.hollowAgent(agentNode, "failover", 1)
	cl := c.client(apiNode)
	warm := hollowInstance(fmt.Sprintf("warm-%d", iter))
	if _, err := cl.Create(ctx, warm, client.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := waitPlaced(ctx, cl, warm.Metadata.Name); err != nil {
		b.Fatalf("before the kill: %v", err)
	}
	c.moveEtcdLeader(dead)
	if l, err := c.controllerLeader(ctx); err != nil || l != dead {
		b.Fatalf("controller leader moved before the kill: %v, %v", l, err)
	}

	obs := observeLeaders(ctx, b, c, dead)
	b.StartTimer()
	start := time.Now()
	powerOff(dead.server, dead.etcdProc)
	acc, err := createUntilAccepted(ctx, cl, fmt.Sprintf("failover-%d", iter))
	if err != nil {
		b.Fatalf("after killing %s: %v", dead.name, err)
	}
	placedAt, err := waitPlaced(ctx, cl, acc.name)
	if err != nil {
		b.Fatalf("after killing %s: %v", dead.name, err)
	}
	b.StopTimer()
	r := failoverResult{accepted: acc.at.Sub(start), placed: placedAt.Sub(start)}

	newLeader, err := c.controllerLeader(ctx)
	if err != nil || newLeader == dead {
		b.Fatalf("after the placement the controller leader is %v (%v); want a surviving server", newLeader, err)
	}
	etcdAt, keyGoneAt := obs.stop()
	b.Logf("killed %s (%s, controller leader, and %s, etcd leader): etcd leader again after %v; "+
		"create accepted after %v (%s, sent after %v; %v); the dead leader's election key gone after %v; "+
		"placed by %s after %v",
		dead.name, dead.serverName(), dead.etcdName, since(start, etcdAt),
		r.accepted.Round(time.Millisecond), acc.name, since(start, acc.sentAt), acc, since(start, keyGoneAt),
		newLeader.serverName(), r.placed.Round(time.Millisecond))
	return r
}

// hollowInstance is a tiny instance that only a hollow host takes.
func hollowInstance(name string) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: name, Project: hollowtest.Project, Labels: map[string]string{"bench": "failover"}},
		Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny",
			Tolerations: []string{api.TaintHollow}},
	}
}

// acceptance is what createUntilAccepted saw.
type acceptance struct {
	// name is the accepted instance, sentAt when its create was sent and
	// at when the answer came.
	name       string
	sentAt, at time.Time
	// sent counts the creates sent, refused those answered with an error
	// (the last of which is last), abandoned those given up unanswered.
	sent, refused, abandoned int
	last                     error
}

// String describes a for the log.
func (a acceptance) String() string {
	s := fmt.Sprintf("%d sent, %d refused, %d abandoned", a.sent, a.refused, a.abandoned)
	if a.last != nil {
		s += fmt.Sprintf(", the last refusal: %v", a.last)
	}
	return s
}

// createUntilAccepted creates new instances named prefix-1, prefix-2, …
// one at a time until the server accepts one, as a client would that
// retries: after an error answer it sends the next createPause later, and
// it gives a create up after attemptTimeout. Each create is sent once (no
// idempotency key, so the client's own retries and back-off play no
// part); a new name each time keeps an abandoned create that was stored
// after all from answering for a later one.
func createUntilAccepted(ctx context.Context, cl *client.Client, prefix string) (acceptance, error) {
	ctx, cancel := context.WithTimeout(ctx, failoverDeadline)
	defer cancel()
	var a acceptance
	for {
		a.sent++
		name := fmt.Sprintf("%s-%d", prefix, a.sent)
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
		sentAt := time.Now()
		_, err := cl.Create(actx, hollowInstance(name), client.CreateOptions{})
		at := time.Now()
		abandoned := actx.Err() != nil
		acancel()
		switch {
		case err == nil:
			a.name, a.sentAt, a.at = name, sentAt, at
			return a, nil
		case ctx.Err() != nil:
			return a, fmt.Errorf("no create accepted within %v (%v); the last error: %w", failoverDeadline, a, err)
		case abandoned:
			a.abandoned++
			continue
		}
		a.refused++
		a.last = err
		if st := api.StatusOf(err); st >= 400 && st < 500 && st != http.StatusConflict && st != http.StatusTooManyRequests {
			return a, fmt.Errorf("create %s refused: %w", name, err)
		}
		t := time.NewTimer(createPause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// waitPlaced polls instance name every 20 ms until it has status.host and
// returns when it saw that.
func waitPlaced(ctx context.Context, cl *client.Client, name string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, failoverDeadline)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		var in api.Instance
		err := cl.Get(gctx, api.InstanceKind, hollowtest.Project, name, &in)
		gcancel()
		switch {
		case err != nil:
			last = err.Error()
		case in.Status.Host != "":
			return time.Now(), nil
		default:
			last = fmt.Sprintf("phase %s reason %s: %s", in.Status.Phase, in.Status.Reason, in.Status.Message)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s not placed within %v: %s", name, failoverDeadline, last)
		}
	}
}

// leaderObserver notes, for the log of each iteration, when etcd has a
// leader again after a node died and when the dead controller leader's
// election key goes (its lease expired: another server may lead).
type leaderObserver struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// etcdAt and keyGoneAt are written by the goroutines until wg is done.
	etcdAt, keyGoneAt time.Time
}

// observeLeaders starts observing; dead is the node about to die, whose
// server leads the controllers now.
func observeLeaders(ctx context.Context, b *testing.B, c *haCloud, dead *haNode) *leaderObserver {
	b.Helper()
	ctx, cancel := context.WithCancel(ctx)
	o := &leaderObserver{cancel: cancel}
	pfx := electionPrefix + controller.DefaultElectionName + "/"
	resp, err := c.etcd.Get(ctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != dead.serverName() {
		b.Fatalf("election key of %s: %v, %v", dead.serverName(), resp, err)
	}
	key := string(resp.Kvs[0].Key)
	wch := c.etcd.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1))
	o.wg.Go(func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					o.keyGoneAt = time.Now()
					return
				}
			}
		}
	})
	o.wg.Go(func() {
		tick := time.NewTicker(observeEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// The time of the answer: an upper bound of the change.
			if l, ok, _ := c.etcdLeader(); ok && l != dead {
				o.etcdAt = time.Now()
				return
			}
		}
	})
	return o
}

// stop ends the observer and returns what it saw (zero: not seen).
func (o *leaderObserver) stop() (etcdAt, keyGoneAt time.Time) {
	o.cancel()
	o.wg.Wait()
	return o.etcdAt, o.keyGoneAt
}

// since formats t-start for the log; a zero t was not seen.
func since(start, t time.Time) string {
	if t.IsZero() {
		return "(not seen)"
	}
	return t.Sub(start).Round(time.Millisecond).String()
}

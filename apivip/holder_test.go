package apivip_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ouroboros-cloud/ouro/apivip"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// fakeAddress records whether the address is on and when it changed.
type fakeAddress struct {
	mu      sync.Mutex
	on      bool
	adds    int
	removed time.Time
}

func (a *fakeAddress) Add(time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.on = true
	a.adds++
	return nil
}

func (a *fakeAddress) Remove() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.on {
		a.removed = time.Now()
	}
	a.on = false
	return nil
}

func (a *fakeAddress) state() (on bool, adds int, removed time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.on, a.adds, a.removed
}

// gate is a TCP proxy to etcd that can stop forwarding, as a partition
// that leaves connections open but silent would.
type gate struct {
	ln     net.Listener
	closed atomic.Bool
}

func newGate(t *testing.T, upstream string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go g.pipe(c, u)
			go g.pipe(u, c)
		}
	}()
	return g
}

// pipe copies src to dst while the gate is open; bytes read while it is
// closed are dropped.
func (g *gate) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !g.closed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (g *gate) url() string { return "http://" + g.ln.Addr().String() }

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ready(context.Context) error { return nil }

// runHolder runs a holder until the returned stop is called or the test
// ends.
func runHolder(t *testing.T, cfg apivip.Config) (stop func()) {
	t.Helper()
	cfg.Logger = etcdtest.Quiet()
	h, err := apivip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func holder(cli *clientv3.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	name, _ := election.Leader(ctx, cli, apivip.ElectionName)
	return name
}

func TestOneHolderAndResignOnShutdown(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client()
	a, b := &fakeAddress{}, &fakeAddress{}
	stopA := runHolder(t, apivip.Config{Client: newClient(t, e.Endpoints()[0]), Identity: "a", Address: a, Ready: ready})
	wait.For(t, 10*time.Second, "a holds the address", func() bool {
		on, _, _ := a.state()
		return on && holder(cli) == "a"
	})
	runHolder(t, apivip.Config{Client: newClient(t, e.Endpoints()[0]), Identity: "b", Address: b, Ready: ready})
	// b is a candidate, never a second holder.
	time.Sleep(500 * time.Millisecond) // give b the chance to do wrong
	if on, _, _ := b.state(); on {
		t.Fatal("b added the address while a holds it")
	}

	start := time.Now()
	stopA()
	if on, _, _ := a.state(); on {
		t.Fatal("a still has the address after Run returned")
	}
	wait.For(t, 10*time.Second, "b holds the address", func() bool {
		on, _, _ := b.state()
		return on && holder(cli) == "b"
	})
	// a resigned: b did not wait for a's session TTL.
	if d := time.Since(start); d >= apivip.DefaultTTL {
		t.Errorf("b took over after %v; a resigning should hand over sooner than the TTL %v", d, apivip.DefaultTTL)
	}
}

func TestQuorumLossDropsBeforeTTL(t *testing.T) {
	e := etcdtest.Start(t)
	g := newGate(t, e.Endpoints()[0][len("http://"):])
	a := &fakeAddress{}
	runHolder(t, apivip.Config{Client: newClient(t, g.url()), Identity: "a", Address: a, Ready: ready})
	wait.For(t, 10*time.Second, "a holds the address", func() bool {
		on, _, _ := a.state()
		return on
	})
	cut := time.Now()
	g.closed.Store(true)
	wait.For(t, 5*time.Second, "a gives the address up", func() bool {
		on, _, _ := a.state()
		return !on
	})
	_, _, removed := a.state()
	// The lease was last renewed at most one check interval before the
	// cut; etcd keeps it TTL after that. The address must go before.
	if d := removed.Sub(cut); d >= apivip.DefaultTTL-apivip.DefaultCheckInterval {
		t.Fatalf("address removed %v after the partition; want well before the session TTL %v", d, apivip.DefaultTTL)
	}

	t.Logf("address removed %v after the partition", removed.Sub(cut).Round(time.Millisecond))

	// With the partition gone, a holds it again.
	g.closed.Store(false)
	wait.For(t, 20*time.Second, "a holds the address again", func() bool {
		on, _, _ := a.state()
		return on
	})
}

func TestNotReadyNeverHolds(t *testing.T) {
	e := etcdtest.Start(t)
	a := &fakeAddress{}
	var isReady atomic.Bool
	runHolder(t, apivip.Config{Client: newClient(t, e.Endpoints()[0]), Identity: "a", Address: a,
		Ready: func(context.Context) error {
			if !isReady.Load() {
				return errors.New("not ready")
			}
			return nil
		}})
	time.Sleep(500 * time.Millisecond) // a has had its chances
	if _, adds, _ := a.state(); adds != 0 || holder(e.Client()) != "" {
		t.Fatalf("a not ready: %d adds, holder %q", adds, holder(e.Client()))
	}
	isReady.Store(true)
	wait.For(t, 10*time.Second, "a holds the address once ready", func() bool {
		on, _, _ := a.state()
		return on
	})
	isReady.Store(false)
	wait.For(t, 10*time.Second, "a gives the address up when not ready", func() bool {
		on, _, _ := a.state()
		return !on && holder(e.Client()) == ""
	})
}

func TestNewRefusesHoldNotShorterThanTTL(t *testing.T) {
	cli := newClient(t, "http://127.0.0.1:1")
	_, err := apivip.New(apivip.Config{Client: cli, Identity: "a", Address: &fakeAddress{}, Ready: ready,
		TTL: 2 * time.Second, Hold: 2 * time.Second})
	if err == nil {
		t.Fatal("New accepted Hold == TTL")
	}
}

package etcdembed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	ctx := context.Background()

	s := etcdtest.StartIn(t, dir)
	if len(s.Endpoints()) != 1 {
		t.Fatalf("Endpoints = %v, want one", s.Endpoints())
	}
	if _, err := s.Client().Put(ctx, "/test/k", "v1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := s.Client().Get(ctx, "/test/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get = %v, %v; want v1", resp, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2 := etcdtest.StartIn(t, dir)
	resp, err = s2.Client().Get(ctx, "/test/k")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("after restart got %v, want v1", resp.Kvs)
	}
}

func TestStartRequiresDataDir(t *testing.T) {
	if _, err := etcdembed.Start(context.Background(), etcdembed.Config{}); err == nil {
		t.Fatal("Start without DataDir succeeded")
	}
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, err = etcdembed.Start(context.Background(), etcdembed.Config{
		DataDir:   t.TempDir(),
		ClientURL: "http://" + l.Addr().String(),
		PeerURL:   etcdtest.FreeURL(t),
		Logger:    etcdtest.Quiet(),
	})
	if err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
}

func TestConnectNoEndpoints(t *testing.T) {
	if _, err := etcdembed.Connect(context.Background(), nil, nil); err == nil {
		t.Fatal("Connect with no endpoints succeeded")
	}
}

func TestConnectEmbedded(t *testing.T) {
	s := etcdtest.StartIn(t, t.TempDir())
	cli, err := etcdembed.Connect(context.Background(), s.Endpoints(), nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.Put(context.Background(), "/test/x", "y"); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

// startExternal runs Debian's etcd binary on free ports and returns its
// client URL.
func startExternal(t *testing.T) []string {
	t.Helper()
	bin := testenv.NeedBinary(t, "etcd")
	curl, purl := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--name", "ext",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl,
		"--advertise-client-urls", curl,
		"--listen-peer-urls", purl,
		"--initial-advertise-peer-urls", purl,
		"--initial-cluster", "ext="+purl,
		"--logger", "zap",
		"--log-outputs", filepath.Join(dir, "etcd.log"),
		"--log-level", "error",
	)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return []string{curl}
}

func TestExternalEtcdStoreSmoke(t *testing.T) {
	endpoints := startExternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	var cli *clientv3.Client
	for {
		c, err := etcdembed.Connect(ctx, endpoints, nil)
		if err == nil {
			cli = c
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("external etcd never answered: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(func() { cli.Close() })

	st := store.NewEtcd(cli)
	events, err := st.Watch(ctx, api.InstanceKind, "p", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "i1", Project: "p"}}
	if _, err := st.Create(ctx, in, store.CreateOptions{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	in.Spec.Image = "debian"
	if err := st.Update(ctx, in); err != nil {
		t.Fatalf("Update: %v", err)
	}
	var got api.Instance
	if err := st.Get(ctx, api.InstanceKind, "p", "i1", &got); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Spec.Image != "debian" || got.Metadata.UID == "" {
		t.Fatalf("Get = %+v", got)
	}
	items, _, err := st.List(ctx, api.InstanceKind, "p", store.ListOptions{})
	if err != nil || len(items) != 1 {
		t.Fatalf("List = %d items, %v", len(items), err)
	}
	if err := st.Delete(ctx, api.InstanceKind, "p", "i1", ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := st.Get(ctx, api.InstanceKind, "p", "i1", &got); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	var seen []string
	for _, want := range []api.EventType{api.Added, api.Modified, api.Deleted} {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch closed after %v", seen)
			}
			seen = append(seen, fmt.Sprintf("%s %s", ev.Type, ev.Object.Meta().Name))
			if ev.Type != want || ev.Object.Meta().Name != "i1" {
				t.Fatalf("events %v, want %s", seen, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event; saw %v", want, seen)
		}
	}
}

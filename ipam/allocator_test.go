package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/store"
)

func freeLoopbackURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// etcdStore starts an embedded etcd for the rest of the test.
func etcdStore(t *testing.T) store.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd, err := etcdembed.Start(ctx, etcdembed.Config{
		DataDir:   t.TempDir(),
		ClientURL: freeLoopbackURL(t),
		PeerURL:   freeLoopbackURL(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { etcd.Close() })
	return store.NewEtcd(etcd.Client())
}

// network stores a network of cidr (gateway its first address) with a VNI.
func network(t *testing.T, a *Allocator, st store.Interface, name, cidr string) *api.Network {
	t.Helper()
	n := &api.Network{Metadata: api.ObjectMeta{Name: name, Project: "p"}, Spec: api.NetworkSpec{CIDR: cidr}}
	p, err := ParsePrefix4("spec.cidr", cidr, 16, 30)
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Gateway = p.Addr().Next().String()
	if _, err := a.CreateNetwork(context.Background(), st, n, store.CreateOptions{}); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	return n
}

func instance(name string, atts ...api.NetworkAttachment) *api.Instance {
	return &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "p"}, Spec: api.InstanceSpec{Networks: atts}}
}

func code(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestAllocateInstanceAddresses(t *testing.T) {
	st := etcdStore(t)
	a := New(Config{Store: st, Offset: LowestFirst})
	ctx := context.Background()
	if n := network(t, a, st, "small", "10.9.0.0/29"); n.Status.VNI != FirstVNI {
		t.Errorf("first VNI = %d, want %d", n.Status.VNI, FirstVNI)
	}
	if n := network(t, a, st, "other", "10.8.0.0/24"); n.Status.VNI != FirstVNI+1 {
		t.Errorf("second VNI = %d, want %d", n.Status.VNI, FirstVNI+1)
	}
	small := api.NetworkAttachment{Network: "small"}

	in := instance("a", small, api.NetworkAttachment{Network: "other", IP: "10.8.0.77"})
	if _, err := a.CreateInstance(ctx, st, in, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []api.Interface{{Network: "small", IP: "10.9.0.2", MAC: "0a:58:0a:09:00:02"}, {Network: "other", IP: "10.8.0.77", MAC: "0a:58:0a:08:00:4d"}}
	if len(in.Status.Interfaces) != 2 || in.Status.Interfaces[0] != want[0] || in.Status.Interfaces[1] != want[1] {
		t.Fatalf("interfaces = %+v, want %+v", in.Status.Interfaces, want)
	}

	_, err := a.CreateInstance(ctx, st, instance("b", api.NetworkAttachment{Network: "other", IP: "10.8.0.77"}), store.CreateOptions{})
	if code(err) != CodeAddressInUse {
		t.Errorf("taken address: %v, want %s", err, CodeAddressInUse)
	}
	_, err = a.CreateInstance(ctx, st, instance("b", api.NetworkAttachment{Network: "other", IP: "10.8.0.1"}), store.CreateOptions{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Field != "spec.networks[0].ip" {
		t.Errorf("gateway address: %v, want an error on spec.networks[0].ip", err)
	}

	// 10.9.0.0/29 has host addresses .1 (gateway) to .6: .2 is taken, four remain.
	for i := range 4 {
		if _, err := a.CreateInstance(ctx, st, instance(fmt.Sprintf("s%d", i), small), store.CreateOptions{}); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	if _, err := a.CreateInstance(ctx, st, instance("full", small), store.CreateOptions{}); code(err) != CodeInsufficientAddresses {
		t.Errorf("full network: %v, want %s", err, CodeInsufficientAddresses)
	}
}

// TestAllocateConcurrently creates instances at once in one network with
// random offsets: every create gets its own address.
func TestAllocateConcurrently(t *testing.T) {
	st := etcdStore(t)
	a := New(Config{Store: st})
	network(t, a, st, "wide", "10.7.0.0/26")
	const n = 40
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ips = map[string]string{}
	)
	for i := range n {
		wg.Go(func() {
			in := instance(fmt.Sprintf("c%d", i), api.NetworkAttachment{Network: "wide"})
			if _, err := a.CreateInstance(context.Background(), st, in, store.CreateOptions{}); err != nil {
				t.Errorf("instance %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ip := in.Status.Interfaces[0].IP
			if other, ok := ips[ip]; ok {
				t.Errorf("%s handed to %s and %s", ip, other, in.Metadata.Name)
			}
			ips[ip] = in.Metadata.Name
		})
	}
	wg.Wait()
	if len(ips) != n {
		t.Errorf("%d distinct addresses, want %d", len(ips), n)
	}
}

func TestAllocateFloatingIPs(t *testing.T) {
	st := etcdStore(t)
	a := New(Config{Store: st})
	ctx := context.Background()
	pool := &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "public"}, Spec: api.FloatingIPPoolSpec{CIDR: "192.0.2.0/24", Start: "192.0.2.10", End: "192.0.2.11"}}
	if _, err := st.Create(ctx, pool, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fip := func(name, inst string) *api.FloatingIP {
		return &api.FloatingIP{Metadata: api.ObjectMeta{Name: name, Project: "p"}, Spec: api.FloatingIPSpec{Pool: "public", Instance: inst}}
	}
	f1 := fip("f1", "web")
	if _, err := a.CreateFloatingIP(ctx, st, f1, store.CreateOptions{}); err != nil || f1.Status.Address != "192.0.2.10" {
		t.Fatalf("f1 = %q, %v; want 192.0.2.10", f1.Status.Address, err)
	}
	var ae *api.Error
	if _, err := a.CreateFloatingIP(ctx, st, fip("f2", "web"), store.CreateOptions{}); !errors.As(err, &ae) || ae.Field != "spec.instance" {
		t.Errorf("second floating IP of one instance: %v, want an error on spec.instance", err)
	}
	f2 := fip("f2", "")
	if _, err := a.CreateFloatingIP(ctx, st, f2, store.CreateOptions{}); err != nil || f2.Status.Address != "192.0.2.11" {
		t.Fatalf("f2 = %q, %v; want 192.0.2.11", f2.Status.Address, err)
	}
	if _, err := a.CreateFloatingIP(ctx, st, fip("f3", ""), store.CreateOptions{}); code(err) != CodeInsufficientAddresses {
		t.Errorf("full pool: %v, want %s", err, CodeInsufficientAddresses)
	}
	moved := *f2
	moved.Spec.Instance = "web"
	if err := a.UpdateFloatingIP(ctx, st, f2, &moved); !errors.As(err, &ae) || ae.Field != "spec.instance" {
		t.Errorf("associating a taken instance: %v, want an error on spec.instance", err)
	}
	got, err := a.PoolAddresses(ctx, "public")
	if err != nil || len(got) != 2 {
		t.Errorf("PoolAddresses = %v, %v; want 2 addresses", got, err)
	}
}

package ipam

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func loadBalancer(name string, hosts int, fip bool) *api.LoadBalancer {
	return &api.LoadBalancer{Metadata: api.ObjectMeta{Name: name, Project: "p"},
		Spec: api.LoadBalancerSpec{Network: "wide", Hosts: hosts, FloatingIP: fip, FloatingIPPool: "public"}}
}

// TestLoadBalancerAddressesUnique creates load balancers and instances at
// once in one network: no address, VIP or port address, is handed out
// twice, and no floating IP either.
func TestLoadBalancerAddressesUnique(t *testing.T) {
	st := etcdStore(t)
	a := New(Config{Store: st})
	ctx := context.Background()
	network(t, a, st, "wide", "10.7.0.0/26")
	pool := &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "public"}, Spec: api.FloatingIPPoolSpec{CIDR: "192.0.2.0/24", Start: "192.0.2.10", End: "192.0.2.40"}}
	if _, err := st.Create(ctx, pool, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		used = map[string]string{}
	)
	take := func(addr, holder string) {
		mu.Lock()
		defer mu.Unlock()
		if other, ok := used[addr]; ok {
			t.Errorf("%s handed to %s and %s", addr, other, holder)
		}
		used[addr] = holder
	}
	const n = 10
	for i := range n {
		wg.Go(func() {
			lb := loadBalancer(fmt.Sprintf("lb%d", i), 2, true)
			if _, err := a.CreateLoadBalancer(ctx, st, lb, store.CreateOptions{}); err != nil {
				t.Errorf("load balancer %d: %v", i, err)
				return
			}
			take(lb.Status.VIP, lb.Metadata.Name)
			for _, p := range lb.Status.PortAddresses {
				take(p, lb.Metadata.Name)
			}
			take(lb.Status.FloatingIP, lb.Metadata.Name)
		})
		wg.Go(func() {
			in := instance(fmt.Sprintf("c%d", i), api.NetworkAttachment{Network: "wide"})
			if _, err := a.CreateInstance(ctx, st, in, store.CreateOptions{}); err != nil {
				t.Errorf("instance %d: %v", i, err)
				return
			}
			take(in.Status.Interfaces[0].IP, in.Metadata.Name)
		})
	}
	wg.Wait()
	if want := n*(3+1) + n; len(used) != want {
		t.Errorf("%d distinct addresses, want %d", len(used), want)
	}
}

func TestLoadBalancerAddressRefusals(t *testing.T) {
	st := etcdStore(t)
	a := New(Config{Store: st, Offset: LowestFirst})
	ctx := context.Background()
	network(t, a, st, "wide", "10.7.0.0/29") // host addresses .1 (gateway) to .6
	first := loadBalancer("first", 2, false)
	first.Spec.VIP = "10.7.0.6"
	if _, err := a.CreateLoadBalancer(ctx, st, first, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if first.Status.VIP != "10.7.0.6" || first.Status.PortAddresses[0] != "10.7.0.2" || first.Status.PortAddresses[1] != "10.7.0.3" {
		t.Errorf("status = %+v", first.Status)
	}
	tests := []struct {
		name  string
		lb    *api.LoadBalancer
		code  string
		field string
	}{
		{"vip taken", func() *api.LoadBalancer { lb := loadBalancer("b", 1, false); lb.Spec.VIP = "10.7.0.3"; return lb }(), CodeAddressInUse, "spec.vip"},
		{"vip is gateway", func() *api.LoadBalancer { lb := loadBalancer("b", 1, false); lb.Spec.VIP = "10.7.0.1"; return lb }(), api.CodeInvalid, "spec.vip"},
		{"network full", loadBalancer("b", 2, false), CodeInsufficientAddresses, "spec.network"},
		{"unknown pool", func() *api.LoadBalancer { lb := loadBalancer("b", 1, true); lb.Spec.FloatingIPPool = "none"; return lb }(), api.CodeInvalid, "spec.floatingIPPool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.CreateLoadBalancer(ctx, st, tt.lb, store.CreateOptions{})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tt.code || ae.Field != tt.field {
				t.Fatalf("CreateLoadBalancer = %v; want %s on %s", err, tt.code, tt.field)
			}
		})
	}
	if claims, err := st.ListClaims(ctx, ipClaimPrefix(networkUID(t, st))); err != nil || len(claims) != 3 {
		t.Errorf("claims = %v, %v; want the first load balancer's 3", claims, err)
	}
}

func networkUID(t *testing.T, st store.Interface) string {
	t.Helper()
	var n api.Network
	if err := st.Get(context.Background(), api.NetworkKind, "p", "wide", &n); err != nil {
		t.Fatal(err)
	}
	return n.Metadata.UID
}

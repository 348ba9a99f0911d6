package admission

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/testcert"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// lbCloud is newCloud with what load balancers refer to: the instance
// web-0, the group web (both on the default network), the network lan
// with no member on it and the floating IP pool public.
func lbCloud(t *testing.T) (*Admitter, store.Interface) {
	t.Helper()
	a, st := newCloud(t)
	ctx := context.Background()
	if _, err := a.CreateInstance(ctx, st, tester, member("web-0"), ""); err != nil {
		t.Fatal(err)
	}
	g := &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.InstanceGroupSpec{Count: 2, Template: api.InstanceTemplate{Image: "busybox", Flavor: "small"}}}
	if err := a.ValidateGroup(ctx, tester, nil, g); err != nil {
		t.Fatal(err)
	}
	lan := &api.Network{Metadata: api.ObjectMeta{Name: "lan", Project: "default"}, Spec: api.NetworkSpec{CIDR: "10.1.0.0/24"}}
	if err := a.ValidateNetworkCreate(ctx, lan); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreNetwork(ctx, st, lan, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "public"}, Spec: api.FloatingIPPoolSpec{CIDR: "192.0.2.0/24", Start: "192.0.2.10", End: "192.0.2.20"}}
	for _, o := range []api.Object{g, pool} {
		if _, err := st.Create(ctx, o, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return a, st
}

// webLB is a load balancer of group web behind an http listener on 80.
func webLB() *api.LoadBalancer {
	return &api.LoadBalancer{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.LoadBalancerSpec{Network: DefaultNetworkName,
			Listeners: []api.Listener{{Protocol: api.ListenerHTTP, Port: 80, DefaultPool: "web"}},
			Pools:     []api.Pool{{Name: "web", Group: "web", Port: 8080}}}}
}

func TestCreateLoadBalancer(t *testing.T) {
	a, st := lbCloud(t)
	ctx := context.Background()
	lb := webLB()
	lb.Spec.FloatingIP = true
	if err := a.ValidateLoadBalancerCreate(ctx, tester, lb); err != nil {
		t.Fatalf("ValidateLoadBalancerCreate: %v", err)
	}
	s := lb.Spec
	hm := s.Pools[0].HealthMonitor
	if s.Hosts != 1 || s.DrainTimeoutSeconds != DefaultDrainTimeoutSeconds || s.Listeners[0].Name != "http-80" ||
		s.FloatingIPPool != "public" || s.Pools[0].Algorithm != api.AlgorithmRoundRobin || s.Pools[0].Weight != 1 ||
		hm != (api.HealthMonitor{Type: api.MonitorTCP, IntervalMillis: 1000, TimeoutMillis: 1000, Rise: 2, Fall: 2}) {
		t.Errorf("defaults not applied: %+v", s)
	}
	if _, err := a.StoreLoadBalancer(ctx, st, lb, store.CreateOptions{}); err != nil {
		t.Fatalf("StoreLoadBalancer: %v", err)
	}
	// web-0 holds 172.31.0.2; the allocator hands out the lowest free.
	var n api.Network
	if err := st.Get(ctx, api.NetworkKind, "default", DefaultNetworkName, &n); err != nil {
		t.Fatal(err)
	}
	got := lb.Status
	if got.NetworkUID != n.Metadata.UID || got.VIP != "172.31.0.3" || len(got.PortAddresses) != 1 || got.PortAddresses[0] != "172.31.0.4" ||
		got.FloatingIP != "192.0.2.10" || got.FloatingIPPool != "public" || got.Phase != api.LBPending {
		t.Errorf("status = %+v", got)
	}

	two := webLB()
	two.Metadata.Name = "two"
	two.Spec.Hosts = 2
	two.Spec.VIP = "172.31.0.3"
	if err := a.ValidateLoadBalancerCreate(ctx, tester, two); err != nil {
		t.Fatal(err)
	}
	_, err := a.StoreLoadBalancer(ctx, st, two, store.CreateOptions{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != ipam.CodeAddressInUse || ae.Field != "spec.vip" || !strings.Contains(ae.Message, "web") {
		t.Fatalf("VIP of another load balancer: %v; want %s on spec.vip naming web", err, ipam.CodeAddressInUse)
	}
	two.Spec.VIP = "172.31.0.9"
	if _, err := a.StoreLoadBalancer(ctx, st, two, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if two.Status.VIP != "172.31.0.9" || len(two.Status.PortAddresses) != 2 || two.Status.PortAddresses[0] != "172.31.0.5" || two.Status.PortAddresses[1] != "172.31.0.6" {
		t.Errorf("status of two = %+v", two.Status)
	}
	in := member("web-1")
	if _, err := a.CreateInstance(ctx, st, tester, in, ""); err != nil {
		t.Fatal(err)
	}
	if ip := in.Status.Interfaces[0].IP; ip != "172.31.0.7" {
		t.Errorf("next instance got %s, want 172.31.0.7 (every lower address is held)", ip)
	}
	if err := st.Delete(ctx, api.LoadBalancerKind, "default", "web", ""); err != nil {
		t.Fatal(err)
	}
	claims, err := st.ListClaims(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for c, holder := range claims {
		if strings.HasSuffix(holder, "/loadbalancers/default/web") {
			t.Errorf("claim %s still held by the deleted load balancer", c)
		}
	}
}

func TestLoadBalancerRefusals(t *testing.T) {
	a, st := lbCloud(t)
	ctx := context.Background()
	cert, key := testcert.Pair(t, "web.example")
	otherCert, _ := testcert.Pair(t, "other.example")
	https := func(lb *api.LoadBalancer, cert, key string) {
		lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Protocol: api.ListenerHTTPS, Port: 443, DefaultPool: "web", Certificate: cert, Key: key})
	}
	tests := []struct {
		name   string
		change func(*api.LoadBalancer)
		field  string
	}{
		{"no network", func(lb *api.LoadBalancer) { lb.Spec.Network = "" }, "spec.network"},
		{"unknown network", func(lb *api.LoadBalancer) { lb.Spec.Network = "wan" }, "spec.network"},
		{"three hosts", func(lb *api.LoadBalancer) { lb.Spec.Hosts = 3 }, "spec.hosts"},
		{"vip outside", func(lb *api.LoadBalancer) { lb.Spec.VIP = "10.1.0.5" }, "spec.vip"},
		{"vip gateway", func(lb *api.LoadBalancer) { lb.Spec.VIP = "172.31.0.1" }, "spec.vip"},
		{"vip broadcast", func(lb *api.LoadBalancer) { lb.Spec.VIP = "172.31.15.255" }, "spec.vip"},
		{"pool without fip", func(lb *api.LoadBalancer) { lb.Spec.FloatingIPPool = "public" }, "spec.floatingIPPool"},
		{"unknown fip pool", func(lb *api.LoadBalancer) { lb.Spec.FloatingIP, lb.Spec.FloatingIPPool = true, "private" }, "spec.floatingIPPool"},
		{"drain timeout", func(lb *api.LoadBalancer) { lb.Spec.DrainTimeoutSeconds = 3601 }, "spec.drainTimeoutSeconds"},
		{"protocol", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Protocol = "udp" }, "spec.listeners[0].protocol"},
		{"port zero", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Port = 0 }, "spec.listeners[0].port"},
		{"port too high", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Port = 65536 }, "spec.listeners[0].port"},
		{"port in use", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Name: "other", Protocol: api.ListenerTCP, Port: 80, DefaultPool: "web"})
		}, "spec.listeners[1].port"},
		{"listener name taken", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Name: "http-80", Protocol: api.ListenerTCP, Port: 81, DefaultPool: "web"})
		}, "spec.listeners[1].name"},
		{"listener name", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Name = "Web_80" }, "spec.listeners[0].name"},
		{"no default pool", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].DefaultPool = "" }, "spec.listeners[0].defaultPool"},
		{"unknown default pool", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].DefaultPool = "api" }, "spec.listeners[0].defaultPool"},
		{"rule on tcp", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners[0].Protocol = api.ListenerTCP
			lb.Spec.Listeners[0].Rules = []api.ListenerRule{{PathPrefix: "/api", Pool: "web"}}
		}, "spec.listeners[0].rules"},
		{"empty rule", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Rules = []api.ListenerRule{{Pool: "web"}} }, "spec.listeners[0].rules[0]"},
		{"rule path", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners[0].Rules = []api.ListenerRule{{PathPrefix: "api", Pool: "web"}}
		}, "spec.listeners[0].rules[0].pathPrefix"},
		{"rule host", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners[0].Rules = []api.ListenerRule{{Host: "a b", Pool: "web"}}
		}, "spec.listeners[0].rules[0].host"},
		{"rule pool", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners[0].Rules = []api.ListenerRule{{Host: "api.example", Pool: "api"}}
		}, "spec.listeners[0].rules[0].pool"},
		{"cert on http", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Certificate = cert }, "spec.listeners[0].certificate"},
		{"key on http", func(lb *api.LoadBalancer) { lb.Spec.Listeners[0].Key = key }, "spec.listeners[0].key"},
		{"https without cert", func(lb *api.LoadBalancer) { https(lb, "", key) }, "spec.listeners[1].certificate"},
		{"https bad cert", func(lb *api.LoadBalancer) {
			https(lb, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key)
		}, "spec.listeners[1].certificate"},
		{"https not pem", func(lb *api.LoadBalancer) { https(lb, "hello", key) }, "spec.listeners[1].certificate"},
		{"https key in cert", func(lb *api.LoadBalancer) { https(lb, key, key) }, "spec.listeners[1].certificate"},
		{"https without key", func(lb *api.LoadBalancer) { https(lb, cert, "") }, "spec.listeners[1].key"},
		{"https bad key", func(lb *api.LoadBalancer) { https(lb, cert, "junk") }, "spec.listeners[1].key"},
		{"https other key", func(lb *api.LoadBalancer) { https(lb, otherCert, key) }, "spec.listeners[1].key"},
		{"pool name", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Name = "Web" }, "spec.pools[0].name"},
		{"pool name taken", func(lb *api.LoadBalancer) { lb.Spec.Pools = append(lb.Spec.Pools, lb.Spec.Pools[0]) }, "spec.pools[1].name"},
		{"algorithm", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Algorithm = "random" }, "spec.pools[0].algorithm"},
		{"no members", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Group = "" }, "spec.pools[0].group"},
		{"group and instances", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].Instances = []api.PoolInstance{{Instance: "web-0"}}
		}, "spec.pools[0].instances"},
		{"unknown group", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Group = "api" }, "spec.pools[0].group"},
		{"group of another project", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Group = "other/web" }, "spec.pools[0].group"},
		{"group off the network", func(lb *api.LoadBalancer) { lb.Spec.Network = "lan" }, "spec.pools[0].group"},
		{"unknown instance", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].Group, lb.Spec.Pools[0].Instances = "", []api.PoolInstance{{Instance: "web-0"}, {Instance: "db-0"}}
		}, "spec.pools[0].instances[1].instance"},
		{"instance twice", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].Group, lb.Spec.Pools[0].Instances = "", []api.PoolInstance{{Instance: "web-0"}, {Instance: "web-0"}}
		}, "spec.pools[0].instances[1].instance"},
		{"instance weight", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].Group, lb.Spec.Pools[0].Instances = "", []api.PoolInstance{{Instance: "web-0", Weight: 257}}
		}, "spec.pools[0].instances[0].weight"},
		{"member port", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Port = 0 }, "spec.pools[0].port"},
		{"weight", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Weight = 257 }, "spec.pools[0].weight"},
		{"monitor type", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].HealthMonitor.Type = "icmp" }, "spec.pools[0].healthMonitor.type"},
		{"tcp monitor path", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].HealthMonitor.Path = "/" }, "spec.pools[0].healthMonitor.path"},
		{"monitor path", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].HealthMonitor = api.HealthMonitor{Type: api.MonitorHTTP, Path: "healthz"}
		}, "spec.pools[0].healthMonitor.path"},
		{"monitor status", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].HealthMonitor = api.HealthMonitor{Type: api.MonitorHTTP, ExpectedStatus: "399-200"}
		}, "spec.pools[0].healthMonitor.expectedStatus"},
		{"monitor interval", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].HealthMonitor.IntervalMillis = 50 }, "spec.pools[0].healthMonitor.intervalMillis"},
		{"monitor timeout", func(lb *api.LoadBalancer) {
			lb.Spec.Pools[0].HealthMonitor.IntervalMillis, lb.Spec.Pools[0].HealthMonitor.TimeoutMillis = 500, 600
		}, "spec.pools[0].healthMonitor.timeoutMillis"},
		{"monitor rise", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].HealthMonitor.Rise = 11 }, "spec.pools[0].healthMonitor.rise"},
		{"monitor fall", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].HealthMonitor.Fall = -1 }, "spec.pools[0].healthMonitor.fall"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb := webLB()
			tt.change(lb)
			err := a.ValidateLoadBalancerCreate(ctx, tester, lb)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != tt.field {
				t.Fatalf("ValidateLoadBalancerCreate = %v; want 400 on %q", err, tt.field)
			}
		})
	}
	t.Run("port in use names the listener", func(t *testing.T) {
		lb := webLB()
		lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 80, DefaultPool: "web"})
		err := a.ValidateLoadBalancerCreate(ctx, tester, lb)
		if want := `spec.listeners[1].port: 80 is already used by listener "http-80"`; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error = %v, want it to start with %s", err, want)
		}
	})
	t.Run("https admitted", func(t *testing.T) {
		lb := webLB()
		https(lb, cert, key)
		if err := a.ValidateLoadBalancerCreate(ctx, tester, lb); err != nil {
			t.Fatalf("ValidateLoadBalancerCreate: %v", err)
		}
	})
	objs, _, err := st.List(ctx, api.LoadBalancerKind, "", store.ListOptions{})
	if err != nil || len(objs) != 0 {
		t.Errorf("refused load balancers stored: %d (%v)", len(objs), err)
	}
	if err := a.ValidateLoadBalancerCreate(ctx, nil, webLB()); err == nil {
		t.Error("a create without an identity was admitted")
	}
}

func TestValidateLoadBalancerUpdate(t *testing.T) {
	a, st := lbCloud(t)
	ctx := context.Background()
	cert, key := testcert.Pair(t, "web.example")
	old := webLB()
	old.Spec.FloatingIP = true
	old.Spec.Listeners = append(old.Spec.Listeners, api.Listener{Protocol: api.ListenerHTTPS, Port: 443, DefaultPool: "web", Certificate: cert, Key: key})
	if err := a.ValidateLoadBalancerCreate(ctx, tester, old); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreLoadBalancer(ctx, st, old, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*api.LoadBalancerSpec)
		field  string // "" when admitted
	}{
		{"listener added", func(s *api.LoadBalancerSpec) {
			s.Listeners = append(s.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 8443, DefaultPool: "web"})
		}, ""},
		{"drain timeout", func(s *api.LoadBalancerSpec) { s.DrainTimeoutSeconds = 5 }, ""},
		{"left out", func(s *api.LoadBalancerSpec) { s.Hosts, s.FloatingIPPool = 0, "" }, ""},
		{"allocated vip repeated", func(s *api.LoadBalancerSpec) { s.VIP = old.Status.VIP }, ""},
		{"network", func(s *api.LoadBalancerSpec) { s.Network = "lan" }, "spec.network"},
		{"vip", func(s *api.LoadBalancerSpec) { s.VIP = "172.31.0.99" }, "spec.vip"},
		{"floating IP", func(s *api.LoadBalancerSpec) { s.FloatingIP = false }, "spec.floatingIP"},
		{"floating IP pool", func(s *api.LoadBalancerSpec) { s.FloatingIPPool = "other" }, "spec.floatingIPPool"},
		{"hosts", func(s *api.LoadBalancerSpec) { s.Hosts = 2 }, "spec.hosts"},
		{"port in use", func(s *api.LoadBalancerSpec) {
			s.Listeners = append(s.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 443, DefaultPool: "web"})
		}, "spec.listeners[2].port"},
		{"new certificate without key", func(s *api.LoadBalancerSpec) {
			s.Listeners[1].Certificate, _ = testcert.Pair(t, "new.example")
		}, "spec.listeners[1].key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb := &api.LoadBalancer{Metadata: old.Metadata, Spec: old.Spec, Status: old.Status}
			lb.Spec.Listeners = append([]api.Listener(nil), old.Spec.Listeners...)
			lb.Spec.Listeners[1].Key = "" // as read back from the API
			tt.change(&lb.Spec)
			err := a.ValidateLoadBalancerUpdate(ctx, tester, old, lb)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateLoadBalancerUpdate: %v", err)
				}
				if lb.Spec.Listeners[1].Key != key || lb.Spec.Hosts != 1 || lb.Spec.FloatingIPPool != "public" || lb.Spec.VIP != "" {
					t.Errorf("kept fields lost: %+v", lb.Spec)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Field != tt.field {
				t.Fatalf("ValidateLoadBalancerUpdate = %v; want an error on %q", err, tt.field)
			}
		})
	}
}

func TestValidateLoadBalancerStatus(t *testing.T) {
	old := &api.LoadBalancer{Status: api.LoadBalancerStatus{VIP: "172.31.0.3", PortAddresses: []string{"172.31.0.4"}, NetworkUID: "n1"}}
	next := &api.LoadBalancer{Status: api.LoadBalancerStatus{Phase: api.LBActive, VIP: "172.31.0.9"}}
	var ae *api.Error
	if err := ValidateLoadBalancerStatus(tester, old, next); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("a user's status write: %v, want 403", err)
	}
	ctrl := &auth.Identity{User: auth.SystemPrefix + "loadbalancer-controller", ClusterAdmin: true}
	if err := ValidateLoadBalancerStatus(ctrl, old, next); err != nil {
		t.Fatalf("the controller's status write: %v", err)
	}
	if next.Status.VIP != "172.31.0.3" || next.Status.NetworkUID != "n1" || len(next.Status.PortAddresses) != 1 || next.Status.Phase != api.LBActive {
		t.Errorf("status = %+v, want the addresses kept and the phase written", next.Status)
	}
	next.Status.Phase = "Running"
	if err := ValidateLoadBalancerStatus(ctrl, old, next); !errors.As(err, &ae) || ae.Field != "status.phase" {
		t.Errorf("bad phase: %v, want an error on status.phase", err)
	}
}

func TestLoadBalancerDeleteChecks(t *testing.T) {
	a, st := lbCloud(t)
	ctx := context.Background()
	lb := webLB()
	if err := a.ValidateLoadBalancerCreate(ctx, tester, lb); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreLoadBalancer(ctx, st, lb, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []api.Object{
		&api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Project: "default"}},
		&api.Network{Metadata: api.ObjectMeta{Name: DefaultNetworkName, Project: "default"}},
		&api.Project{Metadata: api.ObjectMeta{Name: "default"}},
	} {
		if o.GetKind() == api.ProjectKind {
			// The project's instance and group would be named first.
			for _, k := range []*api.Kind{api.InstanceKind, api.InstanceGroupKind} {
				name := map[*api.Kind]string{api.InstanceKind: "web-0", api.InstanceGroupKind: "web"}[k]
				if err := st.Delete(ctx, k, "default", name, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		err := a.BeforeDelete(ctx, st, o)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInUse || !strings.Contains(ae.Message, "LoadBalancer default/web") {
			t.Errorf("delete %s: %v, want in use by LoadBalancer default/web", o.GetKind(), err)
		}
	}
	if err := a.BeforeDelete(ctx, st, &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "api", Project: "default"}}); err != nil {
		t.Errorf("delete of a group no pool names: %v", err)
	}
}

func TestLoadBalancerHealthCheck(t *testing.T) {
	a, _ := newCloud(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		hc    api.HealthCheck
		field string
	}{
		{"admitted", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "web"}, ""},
		{"no load balancer", api.HealthCheck{Kind: api.HealthLoadBalancer}, "spec.healthCheck.loadBalancer"},
		{"bad name", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "Web"}, "spec.healthCheck.loadBalancer"},
		{"port", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "web", Port: 80}, "spec.healthCheck.port"},
		{"path", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "web", Path: "/"}, "spec.healthCheck.path"},
		{"load balancer on tcp", api.HealthCheck{Kind: api.HealthTCP, Port: 80, LoadBalancer: "web"}, "spec.healthCheck.loadBalancer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
				Spec: api.InstanceGroupSpec{Count: 1, HealthCheck: tt.hc, Template: api.InstanceTemplate{Image: "busybox", Flavor: "small"}}}
			err := a.ValidateGroup(ctx, tester, nil, g)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateGroup: %v", err)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Field != tt.field {
				t.Fatalf("ValidateGroup = %v; want an error on %q", err, tt.field)
			}
		})
	}
}

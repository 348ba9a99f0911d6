package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/testcert"
)

// lbServer is an API server with, in project default, a Ready image, the
// instance web-0 and the group web (both on the default network), and
// the floating IP pool public.
func lbServer(t *testing.T) (*apitest.Server, *client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	s.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"},
		Spec: api.ImageSpec{Format: api.FormatOCI}, Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
	admin := s.Client(t, s.Admin)
	ctx := context.Background()
	for _, o := range []api.Object{
		&api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web-0", Project: "default"}, Spec: api.InstanceSpec{Image: "busybox", Flavor: "small"}},
		&api.InstanceGroup{Kind: "InstanceGroup", Metadata: api.ObjectMeta{Name: "web", Project: "default"},
			Spec: api.InstanceGroupSpec{Count: 2, Template: api.InstanceTemplate{Image: "busybox", Flavor: "small"}}},
		&api.FloatingIPPool{Kind: "FloatingIPPool", Metadata: api.ObjectMeta{Name: "public"},
			Spec: api.FloatingIPPoolSpec{CIDR: "192.0.2.0/24", Start: "192.0.2.10", End: "192.0.2.20"}},
	} {
		if _, err := admin.Create(ctx, o, client.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", o.GetKind(), err)
		}
	}
	return s, admin
}

// webLB asks for group web behind http on 80 and https on 443.
func webLB(cert, key string) *api.LoadBalancer {
	return &api.LoadBalancer{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.LoadBalancerSpec{Network: "default", FloatingIP: true,
			Listeners: []api.Listener{
				{Protocol: api.ListenerHTTP, Port: 80, DefaultPool: "web"},
				{Protocol: api.ListenerHTTPS, Port: 443, DefaultPool: "web", Certificate: cert, Key: key},
			},
			Pools: []api.Pool{{Name: "web", Group: "web", Port: 8080}}}}
}

// apiErr returns err's *api.Error, failing the test if it has none.
func apiErr(t *testing.T, err error) *api.Error {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an API error", err)
	}
	return ae
}

// claimsOf returns the claims whose holder is the load balancer or
// instance named name in project default.
func claimsOf(t *testing.T, s *apitest.Server, plural, name string) []string {
	t.Helper()
	all, err := s.Store.ListClaims(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for c, holder := range all {
		if strings.HasSuffix(holder, "/"+plural+"/default/"+name) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

func TestLoadBalancerLifecycle(t *testing.T) {
	s, admin := lbServer(t)
	ctx := context.Background()
	member := s.Client(t, s.Token(t, "alice", "default", api.RoleMember))
	cert, key := testcert.Pair(t, "web.example")

	lb := webLB(cert, key)
	if _, err := member.CreateLoadBalancer(ctx, lb, client.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	st := lb.Status
	if st.VIP == "" || len(st.PortAddresses) != 1 || st.FloatingIP == "" || st.FloatingIPPool != "public" || st.NetworkUID == "" || st.Phase != api.LBPending {
		t.Errorf("status after create = %+v", st)
	}
	if lb.Spec.Listeners[1].Key != "" || lb.Spec.Listeners[1].Certificate == "" {
		t.Error("the create's answer carries the key, or lost the certificate")
	}
	stored := s.Get(t, api.LoadBalancerKind, "default", "web").(*api.LoadBalancer)
	if stored.Spec.Listeners[1].Key != key {
		t.Error("the key was not stored")
	}

	// The VIP, the port address and the instance's address are distinct
	// claims of the network, the floating IP a claim of the pool.
	in := s.Get(t, api.InstanceKind, "default", "web-0").(*api.Instance)
	ip := in.Status.Interfaces[0].IP
	lbClaims := claimsOf(t, s, "loadbalancers", "web")
	want := []string{"fip/public/" + st.FloatingIP, "ip/" + st.NetworkUID + "/" + st.PortAddresses[0], "ip/" + st.NetworkUID + "/" + st.VIP}
	slices.Sort(want)
	if !slices.Equal(lbClaims, want) || ip == st.VIP || ip == st.PortAddresses[0] || st.VIP == st.PortAddresses[0] {
		t.Errorf("claims = %v, want %v (instance at %s)", lbClaims, want, ip)
	}

	// A listener added by read-modify-write keeps the https key.
	got, err := member.UpdateLoadBalancer(ctx, "default", "web", func(lb *api.LoadBalancer) error {
		lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 8443, DefaultPool: "web"})
		return nil
	})
	if err != nil {
		t.Fatalf("add a listener: %v", err)
	}
	if len(got.Spec.Listeners) != 3 || got.Spec.Listeners[2].Name != "tcp-8443" || got.Metadata.Generation != 2 {
		t.Errorf("after adding a listener: %+v", got.Spec.Listeners)
	}
	if k := s.Get(t, api.LoadBalancerKind, "default", "web").(*api.LoadBalancer).Spec.Listeners[1].Key; k != key {
		t.Error("the https key was lost by an update")
	}

	// Networks and groups the load balancer uses cannot go.
	for _, o := range []struct {
		kind *api.Kind
		name string
	}{{api.NetworkKind, "default"}, {api.InstanceGroupKind, "web"}} {
		err := member.Delete(ctx, o.kind, "default", o.name)
		if ae := apiErr(t, err); ae.Code != api.CodeInUse || !strings.Contains(ae.Message, "LoadBalancer default/web") {
			t.Errorf("delete %s: %v, want in use by the load balancer", o.kind, err)
		}
	}

	if err := member.DeleteLoadBalancer(ctx, "default", "web"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if c := claimsOf(t, s, "loadbalancers", "web"); len(c) != 0 {
		t.Errorf("claims left after delete: %v", c)
	}
	if c := claimsOf(t, s, "instances", "web-0"); len(c) != 1 {
		t.Errorf("instance claims = %v, want its address", c)
	}
	if err := admin.Delete(ctx, api.InstanceGroupKind, "default", "web"); err != nil {
		t.Errorf("delete the group once the load balancer is gone: %v", err)
	}
}

func TestLoadBalancerKeyNeverReturned(t *testing.T) {
	s, admin := lbServer(t)
	ctx := context.Background()
	viewer := s.Client(t, s.Token(t, "vic", "default", api.RoleViewer))
	cert, key := testcert.Pair(t, "web.example")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	watched := make(chan api.LoadBalancer, 4)
	go client.Watch(wctx, viewer, api.LoadBalancerKind, "default", client.WatchOptions{}, func(ev api.WatchEvent[api.LoadBalancer]) error {
		if ev.Type == api.Added {
			watched <- ev.Object
		}
		return nil
	})
	if _, err := admin.CreateLoadBalancer(ctx, webLB(cert, key), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{admin, viewer} {
		lb, err := c.GetLoadBalancer(ctx, "default", "web")
		if err != nil {
			t.Fatal(err)
		}
		if lb.Spec.Listeners[1].Key != "" {
			t.Error("get returned the key")
		}
		lbs, err := c.ListLoadBalancers(ctx, "default")
		if err != nil || len(lbs) != 1 || lbs[0].Spec.Listeners[1].Key != "" {
			t.Errorf("list = %d load balancers, %v, or returned the key", len(lbs), err)
		}
		if lbs, err := c.ListLoadBalancers(ctx, ""); err != nil || len(lbs) != 1 || lbs[0].Spec.Listeners[1].Key != "" {
			t.Errorf("list of all projects = %d load balancers, %v, or returned the key", len(lbs), err)
		}
	}
	select {
	case lb := <-watched:
		if lb.Spec.Listeners[1].Key != "" || lb.Spec.Listeners[1].Certificate == "" {
			t.Error("watch returned the key, or lost the certificate")
		}
	case <-wctx.Done():
		t.Fatal("no watch event for the load balancer")
	}
}

func TestLoadBalancerAccess(t *testing.T) {
	s, admin := lbServer(t)
	ctx := context.Background()
	s.Project(t, "other")
	viewer := s.Client(t, s.Token(t, "vic", "default", api.RoleViewer))
	outsider := s.Client(t, s.Token(t, "olga", "other", api.RoleMember))
	member := s.Client(t, s.Token(t, "alice", "default", api.RoleMember))
	cert, key := testcert.Pair(t, "web.example")
	if _, err := member.CreateLoadBalancer(ctx, webLB(cert, key), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.GetLoadBalancer(ctx, "default", "web"); err != nil {
		t.Errorf("viewer get: %v", err)
	}
	other := webLB("", "")
	other.Metadata.Name = "other"
	other.Spec.Listeners = other.Spec.Listeners[:1]
	if _, err := viewer.CreateLoadBalancer(ctx, other, client.CreateOptions{}); apiErr(t, err).Code != api.CodeForbidden {
		t.Errorf("viewer create: %v, want forbidden", err)
	}
	if _, err := viewer.UpdateLoadBalancer(ctx, "default", "web", func(*api.LoadBalancer) error { return nil }); apiErr(t, err).Code != api.CodeForbidden {
		t.Errorf("viewer update: %v, want forbidden", err)
	}
	if err := viewer.DeleteLoadBalancer(ctx, "default", "web"); apiErr(t, err).Code != api.CodeForbidden {
		t.Errorf("viewer delete: %v, want forbidden", err)
	}
	if _, err := outsider.GetLoadBalancer(ctx, "default", "web"); apiErr(t, err).Status != http.StatusNotFound {
		t.Errorf("other project get: %v, want 404", err)
	}
	if err := outsider.DeleteLoadBalancer(ctx, "default", "web"); apiErr(t, err).Status != http.StatusNotFound {
		t.Errorf("other project delete: %v, want 404", err)
	}
	if lbs, err := outsider.ListLoadBalancers(ctx, ""); err != nil || len(lbs) != 0 {
		t.Errorf("other project list = %d, %v; want none", len(lbs), err)
	}
	// A pool cannot name another project's group: names resolve in the
	// caller's project.
	s.Create(t, &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "api", Project: "other"},
		Spec: api.InstanceGroupSpec{Count: 1, Template: api.InstanceTemplate{Image: "default/busybox", Flavor: "small",
			Networks: []api.NetworkAttachment{{Network: "default"}}}}})
	cross := webLB("", "")
	cross.Metadata.Name = "cross"
	cross.Spec.Listeners = cross.Spec.Listeners[:1]
	cross.Spec.FloatingIP = false
	cross.Spec.Pools[0].Group = "api"
	if _, err := member.CreateLoadBalancer(ctx, cross, client.CreateOptions{}); apiErr(t, err).Field != "spec.pools[0].group" {
		t.Errorf("pool of another project's group: %v, want an error on spec.pools[0].group", err)
	}
	// Only the controllers write the status.
	for _, c := range []*client.Client{admin, member} {
		lb, err := c.GetLoadBalancer(ctx, "default", "web")
		if err != nil {
			t.Fatal(err)
		}
		lb.Status.Phase = api.LBActive
		if err := c.UpdateStatus(ctx, lb); apiErr(t, err).Code != api.CodeForbidden {
			t.Errorf("status write: %v, want forbidden", err)
		}
	}
	// A host's token reads no load balancer.
	host := s.Client(t, s.Join(t, "h1", "https://127.0.0.1:1"))
	if _, err := host.GetLoadBalancer(ctx, "default", "web"); err == nil {
		t.Error("a host read a load balancer")
	}
}

func TestLoadBalancerBadInputChangesNothing(t *testing.T) {
	s, admin := lbServer(t)
	ctx := context.Background()
	cert, key := testcert.Pair(t, "web.example")
	if _, err := admin.CreateLoadBalancer(ctx, webLB(cert, key), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := s.Get(t, api.LoadBalancerKind, "default", "web").(*api.LoadBalancer)
	claims := claimsOf(t, s, "loadbalancers", "web")
	otherCert, _ := testcert.Pair(t, "other.example")
	tests := []struct {
		name   string
		change func(*api.LoadBalancer)
		field  string
	}{
		{"port in use", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 80, DefaultPool: "web"})
		}, "spec.listeners[2].port"},
		{"unknown group", func(lb *api.LoadBalancer) { lb.Spec.Pools[0].Group = "nope" }, "spec.pools[0].group"},
		{"bad certificate", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners[1].Certificate, lb.Spec.Listeners[1].Key = otherCert, key
		}, "spec.listeners[1].key"},
		{"vip", func(lb *api.LoadBalancer) { lb.Spec.VIP = "172.31.0.200" }, "spec.vip"},
		{"hosts", func(lb *api.LoadBalancer) { lb.Spec.Hosts = 2 }, "spec.hosts"},
		{"finalizers", func(lb *api.LoadBalancer) { lb.Metadata.Finalizers = []string{"x"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admin.UpdateLoadBalancer(ctx, "default", "web", func(lb *api.LoadBalancer) error {
				tt.change(lb)
				return nil
			})
			if tt.field != "" {
				if ae := apiErr(t, err); ae.Status != http.StatusBadRequest || ae.Field != tt.field {
					t.Fatalf("update = %v; want 400 on %s", err, tt.field)
				}
			} else if err != nil {
				t.Fatalf("update: %v", err)
			}
			after := s.Get(t, api.LoadBalancerKind, "default", "web").(*api.LoadBalancer)
			if tt.field != "" && after.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
				t.Error("a refused update changed the load balancer")
			}
			if len(after.Metadata.Finalizers) != 0 {
				t.Error("a user set finalizers")
			}
		})
	}
	// Refused creates store nothing and claim nothing.
	bad := webLB(otherCert, key)
	bad.Metadata.Name = "bad"
	if _, err := admin.CreateLoadBalancer(ctx, bad, client.CreateOptions{}); apiErr(t, err).Field != "spec.listeners[1].key" {
		t.Errorf("create with a key of another certificate: %v", err)
	}
	withFinalizer := webLB(cert, key)
	withFinalizer.Metadata.Name, withFinalizer.Metadata.Finalizers = "fin", []string{api.FinalizerLoadBalancer}
	if _, err := admin.CreateLoadBalancer(ctx, withFinalizer, client.CreateOptions{}); apiErr(t, err).Field != "metadata.finalizers" {
		t.Errorf("create with finalizers: %v, want an error on metadata.finalizers", err)
	}
	if s.Get(t, api.LoadBalancerKind, "default", "bad") != nil || s.Get(t, api.LoadBalancerKind, "default", "fin") != nil ||
		len(claimsOf(t, s, "loadbalancers", "bad")) != 0 || !slices.Equal(claimsOf(t, s, "loadbalancers", "web"), claims) {
		t.Error("a refused create stored or claimed something")
	}
	// A user cannot set or drop an instance's finalizers either.
	s.Update(t, api.InstanceKind, "default", "web-0", func(o api.Object) {
		o.Meta().Finalizers = []string{api.FinalizerLoadBalancer}
	})
	var in api.Instance
	if err := admin.Get(ctx, api.InstanceKind, "default", "web-0", &in); err != nil {
		t.Fatal(err)
	}
	in.Metadata.Finalizers = nil
	if err := admin.Update(ctx, &in); err != nil {
		t.Fatalf("update instance: %v", err)
	}
	if f := s.Get(t, api.InstanceKind, "default", "web-0").Meta().Finalizers; !slices.Equal(f, []string{api.FinalizerLoadBalancer}) {
		t.Errorf("finalizers = %v, want the controller's kept", f)
	}
}

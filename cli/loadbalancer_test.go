package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testcert"
)

// seedLoadBalancing stores in project demo what load balancers refer to:
// the group web and the instances web-0 and web-1 on the default
// network, and the floating IP pool public.
func seedLoadBalancing(t *testing.T, c *cloud) {
	t.Helper()
	c.add(t, &api.InstanceGroup{Kind: "InstanceGroup", Metadata: api.ObjectMeta{Name: "web", Project: "demo"},
		Spec: api.InstanceGroupSpec{Count: 2, Template: api.InstanceTemplate{Image: "demo/busybox", Flavor: "small",
			Networks: []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}}}})
	for _, name := range []string{"web-0", "web-1"} {
		c.add(t, &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: name, Project: "demo"},
			Spec: api.InstanceSpec{Image: "demo/busybox", Flavor: "small",
				Networks: []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}}})
	}
	c.add(t, &api.FloatingIPPool{Kind: "FloatingIPPool", Metadata: api.ObjectMeta{Name: "public"},
		Spec: api.FloatingIPPoolSpec{CIDR: "10.99.0.0/24", Start: "10.99.0.200", End: "10.99.0.250"}})
}

// loadBalancer returns the stored load balancer of project demo, or nil.
func (c *cloud) loadBalancer(t *testing.T, name string) *api.LoadBalancer {
	t.Helper()
	if obj := c.object(t, api.LoadBalancerKind, "demo", name); obj != nil {
		return obj.(*api.LoadBalancer)
	}
	return nil
}

func TestLoadBalancerCreateSendsTheShortPath(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedLoadBalancing(t, c)
	r := runCLI(t, nil, "", "lb", "create", "web", "--network", "default", "--listen", "80", "--listen", "8080/http",
		"--group", "web", "--port", "8080", "--health", "http:/healthz", "--fip", "--drain-timeout", "10s", "--algorithm", "least-connections")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	w := writes(c.requestsSeen())
	if len(w) != 1 || w[0].Method != "POST" || w[0].Path != "/v1/projects/demo/loadbalancers" || w[0].Key == "" {
		t.Fatalf("want one create with an idempotency key, got %+v", w)
	}
	want := `{"kind":"LoadBalancer","metadata":{"name":"web","project":"demo"},"spec":{"network":"default","floatingIP":true,` +
		`"hosts":1,"drainTimeoutSeconds":10,` +
		`"listeners":[{"protocol":"tcp","port":80,"defaultPool":"default"},{"protocol":"http","port":8080,"defaultPool":"default"}],` +
		`"pools":[{"name":"default","algorithm":"least-connections","group":"web","port":8080,"healthMonitor":{"type":"http","path":"/healthz"}}]}}`
	if got, want := normalJSON(t, w[0].Body), normalJSON(t, want); !reflect.DeepEqual(got, want) {
		t.Fatalf("body %s\nwant %s", w[0].Body, want)
	}
	lb := c.loadBalancer(t, "web")
	if lb == nil || lb.Status.VIP == "" || lb.Status.FloatingIP == "" {
		t.Fatalf("stored %+v", lb)
	}
	for _, s := range []string{"NAME", "web", lb.Status.VIP, lb.Status.FloatingIP, "80/tcp,8080/http", "Pending"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}

	r = runCLI(t, nil, "", "lb", "get", "web")
	for _, s := range []string{"tcp-80", "http-8080", "group web", "http:/healthz 200-399", "least-connections"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("get lacks %q:\n%s", s, r.stdout)
		}
	}
	r = runCLI(t, nil, "", "lb", "list", "-o", "json")
	var list struct{ Items []api.LoadBalancer }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 1 || list.Items[0].Status.VIP != lb.Status.VIP {
		t.Errorf("list -o json = %v\n%s", err, r.stdout)
	}
	r = runCLI(t, nil, "", "lb", "delete", "web", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "loadbalancer/web deleted") || c.loadBalancer(t, "web") != nil {
		t.Errorf("delete: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func TestLoadBalancerListenersAndPools(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedLoadBalancing(t, c)
	if r := runCLI(t, nil, "", "lb", "create", "web", "--network", "default", "--listen", "80/http",
		"--instance", "web-0", "--instance", "web-1:3", "--port", "8080"); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	dir := t.TempDir()
	cert, key := testcert.Pair(t, "web.example")
	certFile, keyFile := filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	os.WriteFile(certFile, []byte(cert), 0o600)
	os.WriteFile(keyFile, []byte(key), 0o600)
	steps := []struct {
		args []string
		out  string
	}{
		{[]string{"lb", "pool", "add", "web", "api", "--group", "web", "--port", "9000", "--health", "http:/ready"}, "loadbalancer/web: pool api added"},
		{[]string{"lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default",
			"--cert", certFile, "--key", keyFile, "--rule", "path=/api,pool=api"}, "loadbalancer/web: listener https-443 added"},
		{[]string{"lb", "listener", "add", "web", "--port", "8443", "--pool", "api", "--name", "api-tls"}, "listener api-tls added"},
		{[]string{"lb", "listener", "delete", "web", "http-80"}, "loadbalancer/web: listener http-80 deleted"},
	}
	for _, s := range steps {
		c.rec.Reset()
		r := runCLI(t, nil, "", s.args...)
		if r.code != 0 || !strings.Contains(r.stdout, s.out) {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", s.args, r.code, r.stdout, r.stderr)
		}
		if w := writes(c.requestsSeen()); len(w) != 1 || w[0].Method != "PUT" || w[0].Path != "/v1/projects/demo/loadbalancers/web" {
			t.Errorf("%v sent %+v, want one PUT", s.args, w)
		}
	}
	lb := c.loadBalancer(t, "web")
	ls, ps := lb.Spec.Listeners, lb.Spec.Pools
	if len(ls) != 2 || ls[0].Name != "https-443" || ls[0].Key != key || len(ls[0].Rules) != 1 || ls[0].Rules[0].Pool != "api" ||
		ls[1].Name != "api-tls" || ls[1].Protocol != api.ListenerTCP {
		t.Errorf("listeners = %+v", ls)
	}
	if len(ps) != 2 || ps[0].Instances[1] != (api.PoolInstance{Instance: "web-1", Weight: 3}) || ps[1].Group != "web" || ps[1].HealthMonitor.Path != "/ready" {
		t.Errorf("pools = %+v", ps)
	}

	// The server refuses, naming the field, and nothing changes.
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"lb", "pool", "delete", "web", "api"}, "spec.listeners[0].rules[0].pool"},
		{[]string{"lb", "listener", "add", "web", "--port", "9443", "--pool", "nope"}, "spec.listeners[2].defaultPool"},
		{[]string{"lb", "pool", "add", "web", "db", "--group", "db", "--port", "5432"}, "spec.pools[2].group"},
		{[]string{"lb", "listener", "add", "web", "--port", "443", "--pool", "api"}, "--port: 443 is already used by listener \"https-443\""},
		{[]string{"lb", "listener", "delete", "web", "http-80"}, "has no listener \"http-80\" (it has: https-443, api-tls)"},
		{[]string{"lb", "pool", "add", "web", "api", "--group", "web", "--port", "1"}, "already has a pool \"api\""},
	}
	rv := lb.Metadata.ResourceVersion
	for _, tt := range refusals {
		r := runCLI(t, nil, "", tt.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to name %s", tt.args, r.code, r.stderr, tt.want)
		}
	}
	if got := c.loadBalancer(t, "web").Metadata.ResourceVersion; got != rv {
		t.Error("a refused change changed the load balancer")
	}
	if r := runCLI(t, nil, "", "lb", "get", "web", "-o", "json"); strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Error("get shows the private key")
	}
	r := runCLI(t, nil, "", "lb", "listener", "delete", "web", "https-443")
	if r.code != 0 {
		t.Fatalf("delete https listener: %s", r.stderr)
	}
	if r := runCLI(t, nil, "", "lb", "pool", "delete", "web", "api"); r.code == 0 {
		t.Errorf("deleted pool api that listener api-tls sends to")
	}
}

func TestLoadBalancerMembersAndWait(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedLoadBalancing(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Play the controller: once the load balancer exists, it serves.
	ctrlCtx, stopCtrl := context.WithCancel(ctx)
	events, err := c.Store.Watch(ctrlCtx, api.LoadBalancerKind, "demo", 0)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	ctrlDone := make(chan struct{})
	go func() {
		defer close(ctrlDone)
		for ev := range events {
			lb, ok := ev.Object.(*api.LoadBalancer)
			if !ok || ev.Type != api.Added {
				continue
			}
			lb.Status.Phase = api.LBActive
			lb.Status.Hosts = []api.LoadBalancerHost{{Name: "host-a", Address: lb.Status.PortAddresses[0], Priority: 200, Ready: true, Active: true}}
			lb.Status.Members = []api.LoadBalancerMember{
				{Pool: "default", Instance: "web-0", Address: "172.31.0.5", Port: 8080, Weight: 1, State: api.MemberActive, Health: api.HealthUp, Since: &since},
				{Pool: "default", Instance: "web-1", Address: "172.31.0.6", Port: 8080, Weight: 1, State: api.MemberDraining, Health: api.HealthDown, Since: &since},
			}
			c.Store.Update(ctx, lb)
		}
	}()
	r := runCLI(t, ctx, "", "lb", "create", "web", "--network", "default", "--listen", "80", "--group", "web", "--port", "8080", "--wait", "--timeout", "20s")
	if r.code != 0 || !strings.Contains(r.stdout, "Active") || !strings.Contains(r.stdout, "host-a*") {
		t.Fatalf("create --wait: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "lb", "members", "web")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "POOL INSTANCE ADDRESS PORT WEIGHT STATE HEALTH SINCE" ||
		strings.Join(strings.Fields(lines[2])[:7], " ") != "default web-1 172.31.0.6 8080 1 draining down" {
		t.Errorf("members table:\n%s", r.stdout)
	}
	r = runCLI(t, nil, "", "lb", "members", "web", "-o", "json")
	var members []api.LoadBalancerMember
	if err := json.Unmarshal([]byte(r.stdout), &members); err != nil || len(members) != 2 || members[0].Health != api.HealthUp {
		t.Errorf("members -o json = %v\n%s", err, r.stdout)
	}
	// With no controller, a wait ends at its deadline and says what it
	// waited for.
	stopCtrl()
	<-ctrlDone
	r = runCLI(t, nil, "", "lb", "create", "slow", "--network", "default", "--listen", "81", "--group", "web", "--port", "8080", "--wait", "--timeout", "1s")
	if want := "timed out waiting for load balancer slow to be active (phase Pending; no host placed yet)"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("create --wait without a controller: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
}

func TestLoadBalancerBadFlagsSendNothing(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"lb", "create", "web", "--listen", "80", "--group", "web", "--port", "80"}, "--network: required"},
		{[]string{"lb", "create", "web", "--network", "n", "--group", "web", "--port", "80"}, "--listen: required"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80/udp", "--group", "web", "--port", "80"}, "--listen"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "0", "--group", "web", "--port", "80"}, "--listen"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "443/https", "--group", "web", "--port", "80"}, "lb listener add"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--port", "80"}, "--group: required"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--instance", "i", "--port", "80"}, "--instance"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g"}, "--port: required"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "70000"}, "--port"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--instance", "i:0", "--port", "80"}, "--instance"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--health", "icmp"}, "--health"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--algorithm", "random"}, "--algorithm"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--hosts", "3"}, "--hosts"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--fip-pool", "p"}, "--fip-pool"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--vip", "x"}, "--vip"},
		{[]string{"lb", "create", "web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80", "--drain-timeout", "1.5s"}, "--drain-timeout"},
		{[]string{"lb", "create", "Web", "--network", "n", "--listen", "80", "--group", "g", "--port", "80"}, "load balancer name"},
		{[]string{"lb", "listener", "add", "web", "--pool", "p"}, "--port: required"},
		{[]string{"lb", "listener", "add", "web", "--port", "80"}, "--pool: required"},
		{[]string{"lb", "listener", "add", "web", "--port", "80", "--pool", "p", "--protocol", "udp"}, "--protocol"},
		{[]string{"lb", "listener", "add", "web", "--port", "443", "--pool", "p", "--protocol", "https"}, "--cert: required"},
		{[]string{"lb", "listener", "add", "web", "--port", "80", "--pool", "p", "--cert", "x"}, "--cert"},
		{[]string{"lb", "listener", "add", "web", "--port", "80", "--pool", "p", "--rule", "path=/a,pool=p"}, "--rule"},
		{[]string{"lb", "listener", "add", "web", "--port", "80", "--pool", "p", "--protocol", "http", "--rule", "path=a,pool=p"}, "--rule"},
		{[]string{"lb", "listener", "add", "web", "--port", "80", "--pool", "p", "--protocol", "http", "--rule", "host=a"}, "--rule"},
		{[]string{"lb", "listener", "delete", "web"}, "NAME"},
		{[]string{"lb", "pool", "add", "web", "p", "--port", "80"}, "--group: required"},
		{[]string{"lb", "pool", "add", "web", "P", "--group", "g", "--port", "80"}, "pool name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c.rec.Reset()
			r := runCLI(t, nil, "", tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want it to mention %q", r.code, r.stderr, tt.want)
			}
			if len(c.requestsSeen()) != 0 {
				t.Errorf("sent %+v", c.requestsSeen())
			}
		})
	}
}

func TestGroupHealthLoadBalancer(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	r := runCLI(t, nil, "", "group", "create", "web", "--image", "busybox", "--flavor", "small", "--count", "1", "--health", "lb:web")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	g := c.object(t, api.InstanceGroupKind, "demo", "web").(*api.InstanceGroup)
	if g.Spec.HealthCheck != (api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "web"}) {
		t.Errorf("health check = %+v", g.Spec.HealthCheck)
	}
}

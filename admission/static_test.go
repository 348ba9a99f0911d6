package admission

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestStaticChecks(t *testing.T) {
	rule := func(r api.SecurityGroupRule) api.SecurityGroupSpec {
		return api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{r}}
	}
	http := api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 80, CIDR: "0.0.0.0/0"}
	lb := func(change func(*api.LoadBalancerSpec)) api.LoadBalancerSpec {
		s := api.LoadBalancerSpec{Network: "web",
			Listeners: []api.Listener{{Protocol: "http", Port: 80, DefaultPool: "web"}},
			Pools:     []api.Pool{{Name: "web", Group: "web", Port: 80}}}
		if change != nil {
			change(&s)
		}
		return s
	}
	tests := []struct {
		name  string
		check func() error
		field string // "" when valid
	}{
		{"network ok", func() error { return CheckNetworkSpec(api.NetworkSpec{CIDR: "10.0.0.0/24", DNS: []string{"9.9.9.9"}}) }, ""},
		{"network bad cidr", func() error { return CheckNetworkSpec(api.NetworkSpec{CIDR: "10.0.0.0/33"}) }, "spec.cidr"},
		{"network gateway outside", func() error { return CheckNetworkSpec(api.NetworkSpec{CIDR: "10.0.0.0/24", Gateway: "10.1.0.1"}) }, "spec.gateway"},
		{"rule ok", func() error { return CheckSecurityGroupSpec(rule(http)) }, ""},
		{"rule source group not looked up", func() error {
			return CheckSecurityGroupSpec(rule(api.SecurityGroupRule{Direction: "ingress", Protocol: "all", SourceGroup: "elsewhere"}))
		}, ""},
		{"rule bad port", func() error {
			return CheckSecurityGroupSpec(rule(api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 70000, CIDR: "0.0.0.0/0"}))
		}, "spec.rules[0].portMin"},
		{"rule duplicate", func() error {
			return CheckSecurityGroupSpec(api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{http, http}})
		}, "spec.rules[1]"},
		{"lb ok", func() error { return CheckLoadBalancerSpec(lb(nil)) }, ""},
		{"lb unknown pool", func() error {
			return CheckLoadBalancerSpec(lb(func(s *api.LoadBalancerSpec) { s.Listeners[0].DefaultPool = "api" }))
		}, "spec.listeners[0].defaultPool"},
		{"lb hosts", func() error { return CheckLoadBalancerSpec(lb(func(s *api.LoadBalancerSpec) { s.Hosts = 3 })) }, "spec.hosts"},
		{"instance ok", func() error { return CheckInstanceSpec(api.InstanceSpec{Image: "busybox", Flavor: "tiny"}) }, ""},
		{"instance bad flavor name", func() error { return CheckInstanceSpec(api.InstanceSpec{Image: "busybox", Flavor: "Tiny!"}) }, "spec.flavor"},
		{"group ok", func() error {
			return CheckGroupSpec(api.InstanceGroupSpec{Count: 3, Template: api.InstanceTemplate{Image: "busybox", Flavor: "tiny"}})
		}, ""},
		{"group count", func() error {
			return CheckGroupSpec(api.InstanceGroupSpec{Count: -1, Template: api.InstanceTemplate{Image: "busybox", Flavor: "tiny"}})
		}, "spec.count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			ae, ok := err.(*api.Error)
			if !ok || ae.Field != tt.field {
				t.Fatalf("err = %v, want an *api.Error on %s", err, tt.field)
			}
		})
	}
}

func TestStaticChecksLeaveTheirArgument(t *testing.T) {
	sg := api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{{Direction: "ingress", Protocol: "tcp", PortMin: 80, CIDR: "0.0.0.0/0"}}}
	want := sg.Rules[0]
	if err := CheckSecurityGroupSpec(sg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sg.Rules[0], want) {
		t.Errorf("rule changed to %+v", sg.Rules[0])
	}
	n := api.NetworkSpec{CIDR: "10.0.0.0/24", DNS: []string{"009.9.9.9"}}
	_ = CheckNetworkSpec(n)
	if n.Gateway != "" || n.NAT != nil || !strings.HasPrefix(n.DNS[0], "009") {
		t.Errorf("network spec changed to %+v", n)
	}
}

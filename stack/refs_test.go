package stack

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestRefsOf(t *testing.T) {
	r := api.StackResource{Kind: "Instance", Name: "app", Spec: json.RawMessage(`{
		"userData": "db=${Instance/db.status.interfaces[0].ip} web=${InstanceGroup/web.members} x=${param.y}",
		"env": ["A=${Instance/db.status.interfaces[0].ip}", "B=${FloatingIP/ip.status.address}"]}`)}
	want := []Ref{
		{"Instance", "db", "status.interfaces[0].ip"},
		{"FloatingIP", "ip", "status.address"},
		{"InstanceGroup", "web", "members"},
	}
	if got := RefsOf(r); !reflect.DeepEqual(got, want) {
		t.Errorf("RefsOf = %+v\nwant %+v", got, want)
	}
}

func TestResolve(t *testing.T) {
	values := map[Ref]string{
		{"Instance", "db", "status.interfaces[0].ip"}: "10.0.0.5",
	}
	lookup := func(r Ref) (string, bool) { v, ok := values[r]; return v, ok }
	tests := []struct {
		name, in, want string
		unresolved     []Ref
	}{
		{"none", `{"count":3}`, `{"count":3}`, nil},
		{"whole", `{"userData":"${Instance/db.status.interfaces[0].ip}"}`, `{"userData":"10.0.0.5"}`, nil},
		{"inside and list", `{"env":["DB=${Instance/db.status.interfaces[0].ip}:5432"]}`, `{"env":["DB=10.0.0.5:5432"]}`, nil},
		{"unresolved stays", `{"a":"${Instance/web.status.interfaces[0].ip}","b":"${Instance/db.status.interfaces[0].ip}"}`,
			`{"a":"${Instance/web.status.interfaces[0].ip}","b":"10.0.0.5"}`, []Ref{{"Instance", "web", "status.interfaces[0].ip"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, unresolved, err := Resolve(json.RawMessage(tt.in), lookup)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want || !reflect.DeepEqual(unresolved, tt.unresolved) {
				t.Errorf("Resolve = %s %v, want %s %v", out, unresolved, tt.want, tt.unresolved)
			}
		})
	}
	if _, _, err := Resolve(json.RawMessage(`{"a":"${nothing}"}`), lookup); err == nil {
		t.Error("Resolve of a malformed reference: no error")
	}
}

func TestLookup(t *testing.T) {
	inst := &api.Instance{Kind: "Instance", Metadata: api.ObjectMeta{Name: "db"},
		Status: api.InstanceStatus{Interfaces: []api.Interface{{Network: "web", IP: "10.0.0.5"}}}}
	group := &api.InstanceGroup{Kind: "InstanceGroup", Metadata: api.ObjectMeta{Name: "web"}, Spec: api.InstanceGroupSpec{Count: 2}}
	members := func(g string) []string {
		if g == "web" {
			return []string{"10.0.0.7", "10.0.0.8"}
		}
		return nil
	}
	tests := []struct {
		obj  api.Object
		path string
		want string
		ok   bool
	}{
		{inst, "status.interfaces[0].ip", "10.0.0.5", true},
		{inst, "status.interfaces[1].ip", "", false},
		{inst, "metadata.name", "db", true},
		{inst, "status.nothing", "", false},
		{group, "spec.count", "2", true},
		{group, "members", "10.0.0.7,10.0.0.8", true},
		{inst, "status.interfaces[0]", `{"ip":"10.0.0.5","network":"web"}`, true},
	}
	for _, tt := range tests {
		got, ok := Lookup(tt.obj, tt.path, members)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%s, %q) = %q %v, want %q %v", tt.obj.Meta().Name, tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOrderAndDependsOn(t *testing.T) {
	_, spec, err := Load([]string{"testdata/web.yaml"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Network web 0, SecurityGroup web 1, Instance db 2, InstanceGroup web 3, LoadBalancer web 4.
	deps := map[int][]int{0: {}, 1: {}, 2: {0}, 3: {0, 1, 2}, 4: {0, 3}}
	for i, want := range deps {
		if got := DependsOn(spec, i); !reflect.DeepEqual(got, want) {
			t.Errorf("DependsOn(%d) = %v, want %v", i, got, want)
		}
	}
	order, err := Order(spec)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[int]int{}
	for p, i := range order {
		pos[i] = p
	}
	for i, ds := range deps {
		for _, d := range ds {
			if pos[d] > pos[i] {
				t.Errorf("order %v puts %d before its dependency %d", order, i, d)
			}
		}
	}
}

func TestOrderCycleThroughImplicitDependency(t *testing.T) {
	spec := api.StackSpec{Resources: []api.StackResource{
		{Kind: "FloatingIP", Name: "ip", Spec: json.RawMessage(`{"instance":"app"}`)},
		{Kind: "Instance", Name: "app", Spec: json.RawMessage(`{"image":"a","flavor":"b","userData":"ip=${FloatingIP/ip.status.address}"}`)},
	}}
	_, err := Order(spec)
	ce, ok := err.(*CycleError)
	if !ok {
		t.Fatalf("Order = %v, want a *CycleError", err)
	}
	if got := err.Error(); got != "dependency cycle: FloatingIP/ip -> Instance/app -> FloatingIP/ip" {
		t.Errorf("error = %q", got)
	}
	if !reflect.DeepEqual(ce.Resources, []int{0, 1}) {
		t.Errorf("resources = %v", ce.Resources)
	}
}

func TestOrderVPCBeforeItsSubnets(t *testing.T) {
	spec := api.StackSpec{Resources: []api.StackResource{
		{Kind: "Network", Name: "web", Spec: json.RawMessage(`{"cidr":"10.0.1.0/24","vpc":"prod"}`)},
		{Kind: "VPC", Name: "prod", Spec: json.RawMessage(`{"cidr":"10.0.0.0/16"}`)},
	}}
	if err := Check(spec, nil); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := DependsOn(spec, 0); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("DependsOn(network) = %v, want the VPC", got)
	}
	if order, err := Order(spec); err != nil || !reflect.DeepEqual(order, []int{1, 0}) {
		t.Errorf("Order = %v, %v; want the VPC first", order, err)
	}
	spec.Resources[1].Spec = json.RawMessage(`{"cidr":"10.0.0.0/8"}`)
	if err := Check(spec, nil); err == nil {
		t.Error("a VPC of /8 passed Check")
	}
}

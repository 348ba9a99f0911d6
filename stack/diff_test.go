package stack

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name, desired, live string
		want                []FieldChange
	}{
		{"equal", `{"count":3}`, `{"count":3}`, nil},
		{"server defaults ignored", `{"cidr":"10.0.0.0/24"}`, `{"cidr":"10.0.0.0/24","gateway":"10.0.0.1","nat":true}`, nil},
		{"number", `{"count":3}`, `{"count":5}`, []FieldChange{{"spec.count", "3", "5"}}},
		{"numbers as JSON values", `{"count":3}`, `{"count":3.0}`, nil},
		{"zero equals missing", `{"portMax":0,"name":""}`, `{}`, nil},
		{"missing in live", `{"keyName":"web"}`, `{}`, []FieldChange{{"spec.keyName", `"web"`, ""}}},
		{"rule ids ignored", `{"rules":[{"protocol":"tcp","portMin":80}]}`,
			`{"rules":[{"id":"ab12","protocol":"tcp","portMin":80,"portMax":80}]}`, nil},
		{"one rule changed", `{"rules":[{"protocol":"tcp","portMin":80},{"protocol":"tcp","portMin":22}]}`,
			`{"rules":[{"id":"1","protocol":"tcp","portMin":80},{"id":"2","protocol":"tcp","portMin":2222}]}`,
			[]FieldChange{{"spec.rules[1].portMin", "22", "2222"}}},
		{"list length", `{"rules":[{"protocol":"tcp"}]}`, `{"rules":[]}`,
			[]FieldChange{{"spec.rules", `[{"protocol":"tcp"}]`, "[]"}}},
		{"empty list and missing", `{"env":[]}`, `{}`, nil},
		{"image as stored", `{"image":"web","template":{"image":"web"}}`, `{"image":"demo/web","template":{"image":"public/web"}}`, nil},
		{"nested map", `{"template":{"image":"a","labels":{"x":"1"}}}`, `{"template":{"image":"b","labels":{"x":"1","y":"2"}}}`,
			[]FieldChange{{"spec.template.image", `"a"`, `"b"`}}},
		{"object replaced by scalar", `{"template":{"image":"a"}}`, `{"template":"x"}`,
			[]FieldChange{{"spec.template", `{"image":"a"}`, `"x"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(json.RawMessage(tt.desired), json.RawMessage(tt.live))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	_, spec, err := Load([]string{"testdata/web.yaml"}, nil, map[string]string{"count": "4"})
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]string{
		"Network/web":       `{"kind":"Network","metadata":{"name":"web"},"spec":{"cidr":"10.20.0.0/24","gateway":"10.20.0.1"}}`,
		"SecurityGroup/web": `{"kind":"SecurityGroup","metadata":{"name":"web","labels":{"tier":"back","ouro.dev/stack":"web"},"annotations":{"note":"by hand"}},"spec":{"rules":[{"id":"x","direction":"ingress","protocol":"tcp","portMin":80,"portMax":80,"cidr":"0.0.0.0/0"}]}}`,
		"Instance/db": `{"kind":"Instance","metadata":{"name":"db"},"spec":{"image":"demo/web","flavor":"small","networks":[{"network":"web"}]},
			"status":{"interfaces":[{"network":"web","ip":"10.20.0.9"}]}}`,
		"InstanceGroup/web": `{"kind":"InstanceGroup","metadata":{"name":"web"},"spec":{"count":3,"template":{"image":"demo/web","flavor":"small",
			"networks":[{"network":"web","securityGroups":["web"]}],"userData":"backend=10.20.0.9"}}}`,
		"Network/old": `{"kind":"Network","metadata":{"name":"old"},"spec":{"cidr":"10.9.0.0/24"}}`,
	}
	if i := slices.IndexFunc(spec.Resources, func(r api.StackResource) bool { return r.Kind == "SecurityGroup" }); i < 0 ||
		spec.Resources[i].Labels["tier"] != "front" || spec.Resources[i].Annotations["owner"] != "Web team <web@example.com>" {
		t.Fatalf("the security group's metadata was not loaded: %+v", spec.Resources)
	}
	get := func(kind, name string) (json.RawMessage, bool) {
		s, ok := live[kind+"/"+name]
		return json.RawMessage(s), ok
	}
	owned := []api.StackResourceStatus{
		{Kind: "Network", Name: "web"}, {Kind: "Network", Name: "old"}, {Kind: "SecurityGroup", Name: "web"},
	}
	var got []string
	for _, c := range Plan(spec, owned, get) {
		line := c.Action + " " + c.Kind + "/" + c.Name
		for _, f := range c.Fields {
			line += " " + f.Field + ":" + f.Got + "->" + f.Want
		}
		got = append(got, line)
	}
	want := []string{
		"unchanged Network/web",
		// The file's label and annotation differ; labels and annotations
		// it does not set are no change.
		`update SecurityGroup/web metadata.labels.tier:"back"->"front" metadata.annotations.owner:->"Web team <web@example.com>"`,
		// The server stores the image as project/name: no change.
		"unchanged Instance/db",
		"update InstanceGroup/web spec.count:3->4",
		"create LoadBalancer/web",
		"delete Network/old",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Plan:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlanSkipsUnresolvedReferences(t *testing.T) {
	spec := api.StackSpec{Resources: []api.StackResource{
		{Kind: "Instance", Name: "app", Spec: json.RawMessage(`{"image":"a","flavor":"b","userData":"db=${Instance/db.status.interfaces[0].ip}"}`)},
	}}
	get := func(kind, name string) (json.RawMessage, bool) {
		if kind == "Instance" && name == "app" {
			return json.RawMessage(`{"spec":{"image":"a","flavor":"b","userData":"db=10.0.0.1"}}`), true
		}
		return nil, false
	}
	changes := Plan(spec, nil, get)
	if len(changes) != 1 || changes[0].Action != ActionUnchanged {
		t.Errorf("Plan = %+v, want unchanged", changes)
	}
}

func TestCheckNamesSources(t *testing.T) {
	spec := api.StackSpec{
		Drift: "sometimes",
		Resources: []api.StackResource{
			{Kind: "Network", Name: "web", Source: "web.yaml:1", Spec: json.RawMessage(`{"cidr":"10.0.0.0/8"}`)},
			{Kind: "Instance", Name: "app", Source: "web.yaml:5", Spec: json.RawMessage(`{"image":"a","flavor":"b","userData":"${Network/db.spec.cidr}"}`)},
			{Kind: "Instance", Name: "ok", Source: "web.yaml:9", Spec: json.RawMessage(`{"image":"a","flavor":"b","userData":"${Network/shared.spec.cidr}"}`)},
			{Kind: "Instance", Name: "self", Source: "web.yaml:13", Spec: json.RawMessage(`{"image":"a","flavor":"b","userData":"${Instance/self.metadata.uid}"}`)},
		},
		Outputs: map[string]string{"x": "${LoadBalancer/web.status.vip}"},
	}
	exists := func(kind, name string) bool { return kind == "Network" && name == "shared" }
	err := Check(spec, exists)
	want := []string{
		`spec.drift: drift "sometimes" is not valid: use correct or report`,
		`web.yaml:1: spec.cidr: prefix length /8 is out of range`,
		`web.yaml:5: spec.userData: ${Network/db.spec.cidr} refers to Network/db, which is neither in the stack nor in the project`,
		`web.yaml:13: spec.userData: ${Instance/self.metadata.uid}: a resource cannot refer to itself`,
		`spec.outputs.x: ${LoadBalancer/web.status.vip} refers to LoadBalancer/web, which is neither in the stack nor in the project`,
	}
	if err == nil {
		t.Fatal("Check = nil")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Check:\n%v", err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestKindOf(t *testing.T) {
	if KindOf("Flavor") != api.FlavorKind || KindOf("Network") != api.NetworkKind {
		t.Error("KindOf does not map Flavor and Network")
	}
	if KindOf("Stack") != nil || KindOf("Project") != nil || KindOf("network") != nil {
		t.Error("KindOf maps a kind a stack cannot hold")
	}
}

// BenchmarkPlanUnchanged200 plans a 200-resource stack that is applied
// (the issue asks for ≤ 1 s, requests included).
func BenchmarkPlanUnchanged200(b *testing.B) {
	var spec api.StackSpec
	live := map[string]json.RawMessage{}
	for i := range 100 {
		net := fmt.Sprintf(`{"cidr":"10.%d.0.0/24"}`, i)
		inst := fmt.Sprintf(`{"image":"busybox","flavor":"tiny","networks":[{"network":"n%d"}],"userData":"peer=${Instance/i%d.status.interfaces[0].ip}"}`, i, max(i-1, 0))
		spec.Resources = append(spec.Resources,
			api.StackResource{Kind: "Network", Name: fmt.Sprintf("n%d", i), Spec: json.RawMessage(net)},
			api.StackResource{Kind: "Instance", Name: fmt.Sprintf("i%d", i), Spec: json.RawMessage(inst)})
		live[fmt.Sprintf("Network/n%d", i)] = json.RawMessage(`{"spec":` + net + `}`)
		live[fmt.Sprintf("Instance/i%d", i)] = json.RawMessage(fmt.Sprintf(`{"spec":{"image":"demo/busybox","flavor":"tiny","networks":[{"network":"n%d"}],"userData":"peer=10.%d.0.2"},"status":{"interfaces":[{"ip":"10.%d.0.2"}]}}`, i, max(i-1, 0), i))
	}
	get := func(kind, name string) (json.RawMessage, bool) { r, ok := live[kind+"/"+name]; return r, ok }
	for b.Loop() {
		for _, c := range Plan(spec, nil, get) {
			if c.Action != ActionUnchanged {
				b.Fatalf("%+v", c)
			}
		}
	}
}

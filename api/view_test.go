package api

import (
	"encoding/json"
	"testing"
	"time"
)

// TestViews checks every view: it decodes into its kind and names the
// object, leaves the object as it was, answers less than the whole object
// and keeps the fields its clients read.
func TestViews(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	meta := ObjectMeta{Name: "x", Project: "p", UID: "u", ResourceVersion: "42", CreationTimestamp: now, Generation: 3,
		Labels: map[string]string{LabelGroup: "web", LabelRevision: "2", LabelHollow: "true", "team": "blue"}}
	inst := &Instance{Kind: "Instance", Metadata: meta,
		Spec: InstanceSpec{Image: "p/img", Flavor: "tiny", Resources: Resources{VCPUs: 1}, Env: []string{"A=1"}},
		Status: InstanceStatus{Phase: PhaseRunning, Host: "h1", Reason: "CrashLoop", Message: "m", RestartCount: 2, NextRestartAt: &now,
			Interfaces: []Interface{{Network: "n", MAC: "0a:00:00:00:00:01", IP: "10.0.0.2"}, {Network: "m", IP: "10.1.0.2"}},
			Conditions: []Condition{{Type: "Other", Status: true}, {Type: ConditionHealthy, Status: false, Reason: "Timeout"}}}}
	host := &Host{Kind: "Host", Metadata: ObjectMeta{Name: "h1", Labels: meta.Labels, CreationTimestamp: now},
		Spec: HostSpec{Unschedulable: true, Taints: []string{TaintHollow}},
		Status: HostStatus{Phase: "Ready", Address: "192.0.2.1", AgentEndpoint: "https://192.0.2.1:9443", Architecture: "amd64",
			Drivers: []string{"container"}, Capacity: Resources{VCPUs: 8}, Allocated: Resources{VCPUs: 2}, AgentVersion: "v1"}}
	nat := false
	tests := []struct {
		kind *Kind
		obj  Object
		view string
		want string
	}{
		{InstanceKind, inst, ViewTable, `{"metadata":{"name":"x","project":"p","creationTimestamp":"2026-12-07T01:02:03Z"},` +
			`"spec":{"image":"p/img","flavor":"tiny"},"status":{"phase":"Running","reason":"CrashLoop","host":"h1","interfaces":[{"ip":"10.0.0.2"}]}}`},
		{InstanceKind, inst, ViewMap, ""},
		{HostKind, host, ViewTable, ""},
		{HostKind, host, ViewMap, ""},
		{InstanceGroupKind, &InstanceGroup{Kind: "InstanceGroup", Metadata: meta,
			Spec:   InstanceGroupSpec{Count: 3, Template: InstanceTemplate{Image: "img", Flavor: "tiny", Env: []string{"A=1"}}},
			Status: InstanceGroupStatus{Desired: 3, Running: 2, Revision: 2, Rollout: "Progressing", MemberAddresses: map[string][]string{"x-0": {"10.0.0.2"}}}}, ViewTable, ""},
		{NetworkKind, &Network{Kind: "Network", Metadata: meta, Spec: NetworkSpec{CIDR: "10.0.0.0/24", DNS: []string{"1.1.1.1"}, NAT: &nat},
			Status: NetworkStatus{VNI: 7, Phase: "Ready", Conditions: []Condition{{Type: "Applied", Status: true}}}}, ViewTable, ""},
		{ImageKind, &Image{Kind: "Image", Metadata: meta, Spec: ImageSpec{Format: FormatOCI, Source: "docker.io/x", Layers: []Blob{{Digest: "sha256:00", Size: 1}}},
			Status: ImageStatus{Phase: "Ready", Size: 1}}, ViewTable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.kind.Name+"/"+tt.view, func(t *testing.T) {
			v := tt.kind.ViewOf(tt.view)
			if v == nil {
				t.Fatalf("%s has no view %q (has %v)", tt.kind.Plural, tt.view, tt.kind.ViewNames())
			}
			whole, _ := json.Marshal(tt.obj)
			got, err := json.Marshal(v.Of(tt.obj))
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := json.Marshal(tt.obj); string(after) != string(whole) {
				t.Errorf("the view changed the object:\n%s\nnow\n%s", whole, after)
			}
			out := tt.kind.New()
			if err := json.Unmarshal(got, out); err != nil {
				t.Fatalf("the view does not decode into the kind: %v", err)
			}
			if out.Meta().Name != tt.obj.Meta().Name || out.Meta().Project != tt.obj.Meta().Project {
				t.Errorf("the view does not name the object as it is: %s", got)
			}
			if len(got) >= len(whole) {
				t.Errorf("the view (%d bytes) is no smaller than the object (%d)", len(got), len(whole))
			}
			if tt.want != "" && string(got) != tt.want {
				t.Errorf("view:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	// What the map draws of an instance.
	raw, _ := json.Marshal(InstanceKind.ViewOf(ViewMap).Of(inst))
	var m Instance
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Metadata.Labels[LabelGroup] != "web" || m.Metadata.Labels[LabelRevision] != "2" || len(m.Metadata.Labels) != 2 ||
		m.Status.RestartCount != 2 || m.Status.NextRestartAt == nil || m.Status.Message != "m" ||
		len(m.Status.Conditions) != 1 || m.Status.Conditions[0].Reason != "Timeout" {
		t.Errorf("map view of an instance: %s", raw)
	}
	if FlavorKind.ViewOf(ViewTable) != nil || len(FlavorKind.ViewNames()) != 0 {
		t.Error("flavors have a view")
	}
}

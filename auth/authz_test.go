package auth

import (
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestAuthorize(t *testing.T) {
	admin := &Identity{User: "root", ClusterAdmin: true}
	roles := func(p string, r api.Role) *Identity {
		return &Identity{User: "u", Roles: map[string]api.Role{p: r}}
	}
	viewer, member, padmin := roles("a", api.RoleViewer), roles("a", api.RoleMember), roles("a", api.RoleAdmin)
	nobody := &Identity{User: "nobody"}
	host := &Identity{Host: "h1"}
	const (
		inst   = "instances"
		img    = "images"
		events = "events"
	)
	tests := []struct {
		name string
		id   *Identity
		a    Attributes
		want Decision
	}{
		{"admin anything", admin, Attributes{Verb: VerbDelete, Resource: "users", Name: "x"}, Allow},
		{"admin joins", admin, Attributes{Verb: VerbCreate, Resource: "jointokens"}, Allow},
		{"viewer reads load balancer", viewer, Attributes{Verb: VerbGet, Resource: "loadbalancers", Project: "a", Name: "lb"}, Allow},
		{"viewer cannot change load balancer", viewer, Attributes{Verb: VerbUpdate, Resource: "loadbalancers", Project: "a", Name: "lb"}, DenyForbidden},
		{"member creates load balancer", member, Attributes{Verb: VerbCreate, Resource: "loadbalancers", Project: "a"}, Allow},
		{"member cannot write load balancer status", member, Attributes{Verb: VerbUpdateStatus, Resource: "loadbalancers", Project: "a", Name: "lb"}, DenyForbidden},
		{"load balancer of other project hidden", member, Attributes{Verb: VerbGet, Resource: "loadbalancers", Project: "b", Name: "lb"}, DenyNotFound},
		{"host reads no load balancer", host, Attributes{Verb: VerbGet, Resource: "loadbalancers", Project: "a", Name: "lb"}, DenyNotFound},
		{"viewer reads stack", viewer, Attributes{Verb: VerbGet, Resource: "stacks", Project: "a", Name: "web"}, Allow},
		{"viewer cannot apply stack", viewer, Attributes{Verb: VerbCreate, Resource: "stacks", Project: "a"}, DenyForbidden},
		{"member applies stack", member, Attributes{Verb: VerbUpdate, Resource: "stacks", Project: "a", Name: "web"}, Allow},
		{"member cannot write stack status", member, Attributes{Verb: VerbUpdateStatus, Resource: "stacks", Project: "a", Name: "web"}, DenyForbidden},
		{"stack of other project hidden", member, Attributes{Verb: VerbCreate, Resource: "stacks", Project: "b"}, DenyNotFound},
		{"nil identity", nil, Attributes{Verb: VerbGet, Resource: "flavors"}, DenyForbidden},

		{"viewer reads instance", viewer, Attributes{Verb: VerbGet, Resource: inst, Project: "a", Name: "i"}, Allow},
		{"viewer lists images", viewer, Attributes{Verb: VerbList, Resource: img, Project: "a"}, Allow},
		{"viewer watches events", viewer, Attributes{Verb: VerbWatch, Resource: events, Project: "a"}, Allow},
		{"viewer cannot create", viewer, Attributes{Verb: VerbCreate, Resource: inst, Project: "a"}, DenyForbidden},
		{"viewer cannot stop", viewer, Attributes{Verb: VerbStop, Resource: inst, Project: "a", Name: "i"}, DenyForbidden},
		{"viewer cannot upload", viewer, Attributes{Verb: VerbCreate, Resource: ResourceBlobs}, DenyForbidden},
		{"viewer cannot grant", viewer, Attributes{Verb: VerbGrant, Resource: "tokens", Project: "a"}, DenyForbidden},
		{"member creates", member, Attributes{Verb: VerbCreate, Resource: inst, Project: "a"}, Allow},
		{"member deletes image", member, Attributes{Verb: VerbDelete, Resource: img, Project: "a", Name: "x"}, Allow},
		{"member execs", member, Attributes{Verb: VerbExec, Resource: inst, Project: "a", Name: "i"}, Allow},
		{"member reads logs", member, Attributes{Verb: VerbLogs, Resource: inst, Project: "a", Name: "i"}, Allow},
		{"member uploads", member, Attributes{Verb: VerbCreate, Resource: ResourceBlobs}, Allow},
		{"member cannot write status", member, Attributes{Verb: VerbUpdateStatus, Resource: inst, Project: "a", Name: "i"}, DenyForbidden},
		{"member cannot write events", member, Attributes{Verb: VerbCreate, Resource: events, Project: "a"}, DenyForbidden},
		{"member cannot grant", member, Attributes{Verb: VerbGrant, Resource: "tokens", Project: "a"}, DenyForbidden},
		{"member of a, other project hidden", member, Attributes{Verb: VerbGet, Resource: inst, Project: "b", Name: "i"}, DenyNotFound},
		{"member of a, create in b hidden", member, Attributes{Verb: VerbCreate, Resource: inst, Project: "b"}, DenyNotFound},
		{"project admin grants", padmin, Attributes{Verb: VerbGrant, Resource: "tokens", Project: "a"}, Allow},
		{"project admin grants elsewhere", padmin, Attributes{Verb: VerbGrant, Resource: "tokens", Project: "b"}, DenyNotFound},
		{"project admin no plain tokens", padmin, Attributes{Verb: VerbList, Resource: "tokens"}, DenyForbidden},
		{"project admin cannot delete project", padmin, Attributes{Verb: VerbDelete, Resource: "projects", Name: "a"}, DenyForbidden},
		{"project admin updates project", padmin, Attributes{Verb: VerbUpdate, Resource: "projects", Name: "a"}, Allow},

		{"public image of other project", nobody, Attributes{Verb: VerbGet, Resource: img, Project: "b", Name: "x", Public: true}, Allow},
		{"private image of other project", nobody, Attributes{Verb: VerbGet, Resource: img, Project: "b", Name: "x"}, DenyNotFound},
		{"anyone reads flavors", nobody, Attributes{Verb: VerbList, Resource: "flavors"}, Allow},
		{"anyone reads hosts", nobody, Attributes{Verb: VerbGet, Resource: "hosts", Name: "h1"}, Allow},
		{"anyone reads blobs", nobody, Attributes{Verb: VerbGet, Resource: ResourceBlobs}, Allow},
		{"no flavor writes", padmin, Attributes{Verb: VerbCreate, Resource: "flavors"}, DenyForbidden},
		{"no host writes", padmin, Attributes{Verb: VerbUpdate, Resource: "hosts", Name: "h1"}, DenyForbidden},
		{"no users", padmin, Attributes{Verb: VerbList, Resource: "users"}, DenyForbidden},
		{"no join tokens", padmin, Attributes{Verb: VerbCreate, Resource: "jointokens"}, DenyForbidden},
		{"no project create", padmin, Attributes{Verb: VerbCreate, Resource: "projects"}, DenyForbidden},
		{"own project visible", viewer, Attributes{Verb: VerbGet, Resource: "projects", Name: "a"}, Allow},
		{"other project hidden", viewer, Attributes{Verb: VerbGet, Resource: "projects", Name: "b"}, DenyNotFound},
		{"project list filtered", nobody, Attributes{Verb: VerbList, Resource: "projects"}, Allow},
		{"cross-project list filtered", nobody, Attributes{Verb: VerbList, Resource: inst}, Allow},
		{"whoami", nobody, Attributes{Verb: VerbGet, Resource: ResourceWhoami}, Allow},

		{"host lists own instances", host, Attributes{Verb: VerbList, Resource: inst, Host: "h1"}, Allow},
		{"host watches own instances", host, Attributes{Verb: VerbWatch, Resource: inst, Host: "h1"}, Allow},
		{"host lists all instances", host, Attributes{Verb: VerbList, Resource: inst}, DenyForbidden},
		{"host lists other host", host, Attributes{Verb: VerbList, Resource: inst, Host: "h2"}, DenyForbidden},
		{"host gets own instance", host, Attributes{Verb: VerbGet, Resource: inst, Project: "a", Name: "i", Host: "h1"}, Allow},
		{"host gets other instance", host, Attributes{Verb: VerbGet, Resource: inst, Project: "a", Name: "i", Host: "h2"}, DenyNotFound},
		{"host writes own status", host, Attributes{Verb: VerbUpdateStatus, Resource: inst, Project: "a", Name: "i", Host: "h1"}, Allow},
		{"host writes other status", host, Attributes{Verb: VerbUpdateStatus, Resource: inst, Project: "a", Name: "i", Host: "h2"}, DenyNotFound},
		{"host cannot update spec", host, Attributes{Verb: VerbUpdate, Resource: inst, Project: "a", Name: "i", Host: "h1"}, DenyForbidden},
		{"host cannot create instance", host, Attributes{Verb: VerbCreate, Resource: inst, Project: "a"}, DenyNotFound},
		{"host gets any image", host, Attributes{Verb: VerbGet, Resource: img, Project: "b", Name: "x"}, Allow},
		{"host gets blobs", host, Attributes{Verb: VerbGet, Resource: ResourceBlobs}, Allow},
		{"host cannot upload", host, Attributes{Verb: VerbCreate, Resource: ResourceBlobs}, DenyForbidden},
		{"host gets own host", host, Attributes{Verb: VerbGet, Resource: "hosts", Name: "h1"}, Allow},
		{"host writes own host status", host, Attributes{Verb: VerbUpdateStatus, Resource: "hosts", Name: "h1"}, Allow},
		{"host writes other host status", host, Attributes{Verb: VerbUpdateStatus, Resource: "hosts", Name: "h2"}, DenyForbidden},
		{"host updates own host spec", host, Attributes{Verb: VerbUpdate, Resource: "hosts", Name: "h1"}, DenyForbidden},
		{"host heartbeats itself", host, Attributes{Verb: VerbHeartbeat, Resource: "hosts", Name: "h1"}, Allow},
		{"host heartbeats another", host, Attributes{Verb: VerbHeartbeat, Resource: "hosts", Name: "h2"}, DenyForbidden},
		{"host creates events", host, Attributes{Verb: VerbCreate, Resource: events, Project: "z"}, Allow},
		{"host cannot read events", host, Attributes{Verb: VerbList, Resource: events, Project: "z"}, DenyNotFound},
		{"host reads flavors", host, Attributes{Verb: VerbGet, Resource: "flavors", Name: "tiny"}, Allow},
		{"host cannot read users", host, Attributes{Verb: VerbGet, Resource: "users", Name: "admin"}, DenyForbidden},
		{"host cannot read projects", host, Attributes{Verb: VerbGet, Resource: "projects", Name: "a"}, DenyForbidden},

		{"viewer reads networks", viewer, Attributes{Verb: VerbGet, Resource: "networks", Project: "a", Name: "n"}, Allow},
		{"viewer cannot create network", viewer, Attributes{Verb: VerbCreate, Resource: "networks", Project: "a"}, DenyForbidden},
		{"member writes security groups", member, Attributes{Verb: VerbUpdate, Resource: "securitygroups", Project: "a", Name: "g"}, Allow},
		{"member creates floating ips", member, Attributes{Verb: VerbCreate, Resource: "floatingips", Project: "a"}, Allow},
		{"member cannot write fip status", member, Attributes{Verb: VerbUpdateStatus, Resource: "floatingips", Project: "a", Name: "f"}, DenyForbidden},
		{"other project networks hidden", member, Attributes{Verb: VerbGet, Resource: "networks", Project: "b", Name: "n"}, DenyNotFound},
		{"anyone reads pools", nobody, Attributes{Verb: VerbList, Resource: "floatingippools"}, Allow},
		{"no pool writes", padmin, Attributes{Verb: VerbCreate, Resource: "floatingippools"}, DenyForbidden},
		{"admin writes pools", admin, Attributes{Verb: VerbCreate, Resource: "floatingippools"}, Allow},
		{"users cannot read host networks", padmin, Attributes{Verb: VerbGet, Resource: "hostnetworks", Name: "h1"}, DenyForbidden},
		{"host gets own host network", host, Attributes{Verb: VerbGet, Resource: "hostnetworks", Name: "h1"}, Allow},
		{"host gets other host network", host, Attributes{Verb: VerbGet, Resource: "hostnetworks", Name: "h2"}, DenyNotFound},
		{"host watches own host network", host, Attributes{Verb: VerbWatch, Resource: "hostnetworks", Host: "h1"}, Allow},
		{"host watches other host network", host, Attributes{Verb: VerbWatch, Resource: "hostnetworks", Host: "h2"}, DenyForbidden},
		{"host writes own host network status", host, Attributes{Verb: VerbUpdateStatus, Resource: "hostnetworks", Name: "h1"}, Allow},
		{"host writes other host network status", host, Attributes{Verb: VerbUpdateStatus, Resource: "hostnetworks", Name: "h2"}, DenyNotFound},
		{"host cannot write host network spec", host, Attributes{Verb: VerbUpdate, Resource: "hostnetworks", Name: "h1"}, DenyForbidden},
		{"host cannot read networks", host, Attributes{Verb: VerbGet, Resource: "networks", Project: "a", Name: "n"}, DenyNotFound},
		{"host cannot read pools", host, Attributes{Verb: VerbList, Resource: "floatingippools"}, DenyForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Authorize(tt.id, tt.a); got != tt.want {
				t.Errorf("Authorize(%v, %+v) = %v, want %v", tt.id, tt.a, got, tt.want)
			}
		})
	}
}

func TestIsSystem(t *testing.T) {
	tests := []struct {
		id   *Identity
		want bool
	}{
		{&Identity{User: SystemPrefix + "loadbalancer-controller", ClusterAdmin: true}, true},
		{&Identity{User: "admin", ClusterAdmin: true}, false},
		{&Identity{Host: "system:h1"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := tt.id.IsSystem(); got != tt.want {
			t.Errorf("%+v.IsSystem() = %v, want %v", tt.id, got, tt.want)
		}
	}
}

package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

const netsPath = "/v1/projects/default/networks"

func network(name, cidr string) api.Network {
	return api.Network{Metadata: api.ObjectMeta{Name: name}, Spec: api.NetworkSpec{CIDR: cidr}}
}

// instanceOn creates an instance with the given attachments.
func (e *env) instanceOn(project, name string, nets ...api.NetworkAttachment) resp {
	e.t.Helper()
	return e.do("POST", "/v1/projects/"+project+"/instances", e.admin, api.Instance{
		Metadata: api.ObjectMeta{Name: name}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny", Networks: nets}})
}

func TestNetworkValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		spec  api.NetworkSpec
		field string
	}{
		{"not a prefix", api.NetworkSpec{CIDR: "10.0.0.0"}, "spec.cidr"},
		{"ipv6", api.NetworkSpec{CIDR: "fd00::/64"}, "spec.cidr"},
		{"too large", api.NetworkSpec{CIDR: "10.0.0.0/8"}, "spec.cidr"},
		{"too small", api.NetworkSpec{CIDR: "10.0.0.0/30"}, "spec.cidr"},
		{"host bits", api.NetworkSpec{CIDR: "10.0.0.1/24"}, "spec.cidr"},
		{"gateway outside", api.NetworkSpec{CIDR: "10.0.0.0/24", Gateway: "10.0.1.1"}, "spec.gateway"},
		{"gateway is network", api.NetworkSpec{CIDR: "10.0.0.0/24", Gateway: "10.0.0.0"}, "spec.gateway"},
		{"gateway is broadcast", api.NetworkSpec{CIDR: "10.0.0.0/24", Gateway: "10.0.0.255"}, "spec.gateway"},
		{"bad dns", api.NetworkSpec{CIDR: "10.0.0.0/24", DNS: []string{"dns.example"}}, "spec.dns[0]"},
		{"overlaps default", api.NetworkSpec{CIDR: "172.31.8.0/24"}, "spec.cidr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			r := e.do("POST", netsPath, e.admin, api.Network{Metadata: api.ObjectMeta{Name: "n"}, Spec: tt.spec})
			if r.status != http.StatusBadRequest || r.apiError().Field != tt.field || r.apiError().Hint == "" {
				t.Fatalf("status %d, error %+v; want 400 on %s", r.status, r.apiError(), tt.field)
			}
			if e.fake.revision() != before {
				t.Error("a refused network changed the store")
			}
		})
	}
	if msg := e.do("POST", netsPath, e.admin, network("n", "172.31.8.0/24")).apiError().Message; !strings.Contains(msg, `"default"`) {
		t.Errorf("overlap error does not name the other network: %q", msg)
	}
}

func TestNetworkDefaultsVNIAndUpdate(t *testing.T) {
	e := newEnv(t)
	var def api.Network
	e.must(http.StatusOK, "GET", netsPath+"/default", e.admin, nil).decode(t, &def)
	if def.Spec.CIDR != admission.DefaultNetworkCIDR || def.Spec.Gateway != "172.31.0.1" || !def.NATEnabled() || def.Status.VNI != ipam.FirstVNI {
		t.Fatalf("default network = %+v", def)
	}
	var n api.Network
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("lab", "10.5.0.0/24")).decode(t, &n)
	if n.Spec.Gateway != "10.5.0.1" || n.Spec.NAT == nil || !*n.Spec.NAT || n.Status.VNI != ipam.FirstVNI+1 {
		t.Fatalf("new network = %+v", n)
	}
	// Another project may reuse the CIDR; it gets its own VNI.
	e.project("other")
	var o api.Network
	e.must(http.StatusCreated, "POST", "/v1/projects/other/networks", e.admin, network("lab", "10.5.0.0/24")).decode(t, &o)
	if o.Status.VNI == n.Status.VNI || o.Status.VNI == def.Status.VNI {
		t.Fatalf("VNI %d reused", o.Status.VNI)
	}

	// DNS and NAT may change; the rest may not.
	off := false
	n.Spec.DNS, n.Spec.NAT = []string{"9.9.9.9"}, &off
	var upd api.Network
	e.must(http.StatusOK, "PUT", netsPath+"/lab", e.admin, n).decode(t, &upd)
	if upd.NATEnabled() || upd.Spec.DNS[0] != "9.9.9.9" || upd.Metadata.Generation != 2 || upd.Status.VNI != n.Status.VNI {
		t.Fatalf("updated network = %+v", upd)
	}
	upd.Spec.CIDR = "10.6.0.0/24"
	if r := e.do("PUT", netsPath+"/lab", e.admin, upd); r.status != http.StatusBadRequest || r.apiError().Field != "spec.cidr" {
		t.Fatalf("CIDR change: %d %s", r.status, r.body)
	}

	// Deleting frees the VNI for the next network.
	e.must(http.StatusOK, "DELETE", netsPath+"/lab", e.admin, nil)
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("lab2", "10.7.0.0/24")).decode(t, &n)
	if n.Status.VNI != ipam.FirstVNI+1 {
		t.Fatalf("VNI after delete = %d, want %d", n.Status.VNI, ipam.FirstVNI+1)
	}
}

func TestInstanceAddresses(t *testing.T) {
	e := newEnvLowestFirst(t)
	e.image("default", "img", false)
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("small", "10.9.0.0/29"))

	var a api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, api.Instance{
		Metadata: api.ObjectMeta{Name: "a"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}).decode(t, &a)
	want := []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}
	if !jsonEqual(a.Spec.Networks, want) {
		t.Fatalf("defaulted networks = %+v", a.Spec.Networks)
	}
	if len(a.Status.Interfaces) != 1 || a.Status.Interfaces[0] != (api.Interface{Network: "default", IP: "172.31.0.2", MAC: "0a:58:ac:1f:00:02"}) {
		t.Fatalf("interfaces = %+v", a.Status.Interfaces)
	}

	// A /29 has 6 host addresses; the gateway takes one.
	var ips []string
	for i := range 5 {
		var in api.Instance
		r := e.instanceOn("default", fmt.Sprintf("s%d", i), api.NetworkAttachment{Network: "small"})
		if r.status != http.StatusCreated {
			t.Fatalf("instance %d: %d %s", i, r.status, r.body)
		}
		r.decode(t, &in)
		ips = append(ips, in.Status.Interfaces[0].IP)
	}
	if got := strings.Join(ips, " "); got != "10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6" {
		t.Fatalf("addresses = %s", got)
	}
	// A retried create whose first attempt took the last address gets the
	// first result, not a full network.
	last := api.Instance{Metadata: api.ObjectMeta{Name: "last"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny",
		Networks: []api.NetworkAttachment{{Network: "small"}}}}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/s4", e.admin, nil)
	var first, retried api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, last, "Idempotency-Key", "k1").decode(t, &first)
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances", e.admin, last, "Idempotency-Key", "k1").decode(t, &retried)
	if first.Metadata.UID != retried.Metadata.UID || retried.Status.Interfaces[0].IP != "10.9.0.6" {
		t.Fatalf("retried create = %+v", retried.Status.Interfaces)
	}
	r := e.do("POST", "/v1/projects/default/instances", e.admin, api.Instance{Metadata: api.ObjectMeta{Name: "full"},
		Spec: api.InstanceSpec{Image: "img", Flavor: "tiny", Networks: []api.NetworkAttachment{{Network: "small"}}}}, "Idempotency-Key", "k2")
	if r.status != http.StatusConflict || r.apiError().Code != ipam.CodeInsufficientAddresses ||
		r.apiError().Field != "spec.networks[0].network" || !strings.Contains(r.apiError().Message, "network small has no free address (5 in use)") {
		t.Fatalf("full network: %d %s", r.status, r.body)
	}

	// Deleting an unplaced instance frees its address at once.
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/s1", e.admin, nil)
	var again api.Instance
	e.instanceOn("default", "again", api.NetworkAttachment{Network: "small"}).decode(t, &again)
	if again.Status.Interfaces[0].IP != "10.9.0.3" {
		t.Fatalf("reused address = %s, want 10.9.0.3", again.Status.Interfaces[0].IP)
	}

	// The network cannot go while instances use it.
	r = e.do("DELETE", netsPath+"/small", e.admin, nil)
	if r.status != http.StatusConflict || r.apiError().Code != api.CodeInUse || !strings.Contains(r.apiError().Message, "Instance default/s0") {
		t.Fatalf("delete used network: %d %s", r.status, r.body)
	}

	// Networks are immutable on instances; leaving them out keeps them.
	a.Spec.Networks = []api.NetworkAttachment{{Network: "small"}}
	if r := e.do("PUT", "/v1/projects/default/instances/a", e.admin, a); r.status != http.StatusBadRequest || r.apiError().Field != "spec.networks" {
		t.Fatalf("network change: %d %s", r.status, r.body)
	}
	a.Spec.Networks = nil
	a.Spec.PowerState = api.PowerOff
	var upd api.Instance
	e.must(http.StatusOK, "PUT", "/v1/projects/default/instances/a", e.admin, a).decode(t, &upd)
	if !jsonEqual(upd.Spec.Networks, want) || len(upd.Status.Interfaces) != 1 {
		t.Fatalf("update lost the networks: %+v %+v", upd.Spec.Networks, upd.Status.Interfaces)
	}

	// An agent's status report cannot change the interfaces.
	e.place("default", "a", "h1", api.PhaseRunning)
	tok := e.hostToken("h1")
	var cur api.Instance
	e.must(http.StatusOK, "GET", "/v1/projects/default/instances/a", e.admin, nil).decode(t, &cur)
	cur.Status.Interfaces = nil
	e.must(http.StatusOK, "PUT", "/v1/projects/default/instances/a/status", tok, cur).decode(t, &upd)
	if len(upd.Status.Interfaces) != 1 {
		t.Fatalf("status report dropped the interfaces")
	}
}

func TestInstanceAttachmentValidation(t *testing.T) {
	e := newEnvLowestFirst(t)
	e.image("default", "img", false)
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("b", "10.1.0.0/24"))
	many := make([]api.NetworkAttachment, 9)
	for i := range many {
		many[i] = api.NetworkAttachment{Network: fmt.Sprintf("n%d", i)}
	}
	tests := []struct {
		name  string
		nets  []api.NetworkAttachment
		field string
	}{
		{"missing network", []api.NetworkAttachment{{Network: "nope"}}, "spec.networks[0].network"},
		{"twice", []api.NetworkAttachment{{Network: "b"}, {Network: "b"}}, "spec.networks[1].network"},
		{"missing group", []api.NetworkAttachment{{Network: "b", SecurityGroups: []string{"nope"}}}, "spec.networks[0].securityGroups[0]"},
		{"too many", many, "spec.networks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.instanceOn("default", "x", tt.nets...)
			if r.status != http.StatusBadRequest || r.apiError().Field != tt.field {
				t.Fatalf("status %d %s; want 400 on %s", r.status, r.body, tt.field)
			}
		})
	}
	var two api.Instance
	e.instanceOn("default", "two", api.NetworkAttachment{Network: "b"}, api.NetworkAttachment{Network: "default"}).decode(t, &two)
	if len(two.Status.Interfaces) != 2 || two.Status.Interfaces[0].IP != "10.1.0.2" || two.Status.Interfaces[1].Network != "default" {
		t.Fatalf("interfaces = %+v", two.Status.Interfaces)
	}
}

func TestSecurityGroups(t *testing.T) {
	e := newEnv(t)
	const path = "/v1/projects/default/securitygroups"
	var def api.SecurityGroup
	e.must(http.StatusOK, "GET", path+"/default", e.admin, nil).decode(t, &def)
	if len(def.Spec.Rules) != 1 || def.Spec.Rules[0].SourceGroup != "default" || len(def.Spec.Rules[0].ID) != 8 {
		t.Fatalf("default group = %+v", def)
	}
	tests := []struct {
		name  string
		rule  api.SecurityGroupRule
		field string
	}{
		{"direction", api.SecurityGroupRule{Direction: "in", Protocol: "all", CIDR: "0.0.0.0/0"}, "spec.rules[0].direction"},
		{"protocol", api.SecurityGroupRule{Direction: "ingress", Protocol: "sctp", CIDR: "0.0.0.0/0"}, "spec.rules[0].protocol"},
		{"tcp without port", api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", CIDR: "0.0.0.0/0"}, "spec.rules[0].portMin"},
		{"port range reversed", api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 90, PortMax: 80, CIDR: "0.0.0.0/0"}, "spec.rules[0].portMax"},
		{"port too high", api.SecurityGroupRule{Direction: "ingress", Protocol: "udp", PortMin: 70000, CIDR: "0.0.0.0/0"}, "spec.rules[0].portMin"},
		{"icmp with port", api.SecurityGroupRule{Direction: "ingress", Protocol: "icmp", PortMin: 1, CIDR: "0.0.0.0/0"}, "spec.rules[0].portMin"},
		{"no remote", api.SecurityGroupRule{Direction: "ingress", Protocol: "all"}, "spec.rules[0].cidr"},
		{"both remotes", api.SecurityGroupRule{Direction: "ingress", Protocol: "all", CIDR: "0.0.0.0/0", SourceGroup: "default"}, "spec.rules[0].sourceGroup"},
		{"cidr host bits", api.SecurityGroupRule{Direction: "ingress", Protocol: "all", CIDR: "10.0.0.1/8"}, "spec.rules[0].cidr"},
		{"unknown source group", api.SecurityGroupRule{Direction: "ingress", Protocol: "all", SourceGroup: "nope"}, "spec.rules[0].sourceGroup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := api.SecurityGroup{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{tt.rule}}}
			r := e.do("POST", path, e.admin, g)
			if r.status != http.StatusBadRequest || r.apiError().Field != tt.field {
				t.Fatalf("status %d %s; want 400 on %s", r.status, r.body, tt.field)
			}
		})
	}
	ssh := api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 22, CIDR: "0.0.0.0/0"}
	dup := api.SecurityGroup{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{ssh, ssh}}}
	if r := e.do("POST", path, e.admin, dup); r.status != http.StatusBadRequest || r.apiError().Field != "spec.rules[1]" {
		t.Fatalf("duplicate rule: %d %s", r.status, r.body)
	}
	var web api.SecurityGroup
	e.must(http.StatusCreated, "POST", path, e.admin, api.SecurityGroup{Metadata: api.ObjectMeta{Name: "web"},
		Spec: api.SecurityGroupSpec{Rules: []api.SecurityGroupRule{ssh, {Direction: "ingress", Protocol: "all", SourceGroup: "default"}}}}).decode(t, &web)
	if r0 := web.Spec.Rules[0]; r0.PortMax != 22 || r0.ID == "" || r0.ID == web.Spec.Rules[1].ID {
		t.Fatalf("rules = %+v", web.Spec.Rules)
	}

	// Rule actions.
	http80 := api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 80, CIDR: "10.0.0.0/8"}
	e.must(http.StatusOK, "POST", path+"/web/rules", e.admin, http80).decode(t, &web)
	if len(web.Spec.Rules) != 3 || web.Metadata.Generation != 2 {
		t.Fatalf("after add: %+v", web)
	}
	if r := e.do("POST", path+"/web/rules", e.admin, http80); r.status != http.StatusConflict || r.apiError().Code != api.CodeAlreadyExists {
		t.Fatalf("duplicate add: %d %s", r.status, r.body)
	}
	id := web.Spec.Rules[2].ID
	e.must(http.StatusOK, "DELETE", path+"/web/rules/"+id, e.admin, nil).decode(t, &web)
	if len(web.Spec.Rules) != 2 {
		t.Fatalf("after delete: %+v", web.Spec.Rules)
	}
	e.must(http.StatusNotFound, "DELETE", path+"/web/rules/"+id, e.admin, nil)

	// In use: by another group's rule, then by an instance.
	if r := e.do("DELETE", path+"/default", e.admin, nil); r.status != http.StatusConflict || !strings.Contains(r.apiError().Message, "SecurityGroup default/web") {
		t.Fatalf("delete referenced group: %d %s", r.status, r.body)
	}
	e.image("default", "img", false)
	e.instanceOn("default", "i", api.NetworkAttachment{Network: "default", SecurityGroups: []string{"web"}})
	if r := e.do("DELETE", path+"/web", e.admin, nil); r.status != http.StatusConflict || !strings.Contains(r.apiError().Message, "Instance default/i") {
		t.Fatalf("delete used group: %d %s", r.status, r.body)
	}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/i", e.admin, nil)
	e.must(http.StatusOK, "DELETE", path+"/web", e.admin, nil)

	viewer := e.userToken("v", map[string]api.Role{"default": api.RoleViewer})
	e.must(http.StatusOK, "GET", path+"/default", viewer, nil)
	e.must(http.StatusForbidden, "POST", path+"/default/rules", viewer, http80)
}

func TestFloatingIPs(t *testing.T) {
	e := newEnv(t)
	const pools, fips = "/v1/floatingippools", "/v1/projects/default/floatingips"
	fip := func(name string, spec api.FloatingIPSpec) api.FloatingIP {
		return api.FloatingIP{Metadata: api.ObjectMeta{Name: name}, Spec: spec}
	}
	if r := e.do("POST", fips, e.admin, fip("f0", api.FloatingIPSpec{})); r.status != http.StatusBadRequest || r.apiError().Field != "spec.pool" {
		t.Fatalf("fip without pools: %d %s", r.status, r.body)
	}
	pool := func(name, cidr, start, end string) api.FloatingIPPool {
		return api.FloatingIPPool{Metadata: api.ObjectMeta{Name: name}, Spec: api.FloatingIPPoolSpec{CIDR: cidr, Start: start, End: end}}
	}
	for _, bad := range []struct {
		p     api.FloatingIPPool
		field string
	}{
		{pool("p", "192.0.2.0/24", "192.0.3.1", "192.0.2.9"), "spec.start"},
		{pool("p", "192.0.2.0/24", "192.0.2.10", "192.0.2.255"), "spec.end"},
		{pool("p", "192.0.2.0/24", "192.0.2.10", "192.0.2.9"), "spec.end"},
		{pool("p", "192.0.2.1/24", "192.0.2.10", "192.0.2.20"), "spec.cidr"},
	} {
		if r := e.do("POST", pools, e.admin, bad.p); r.status != http.StatusBadRequest || r.apiError().Field != bad.field {
			t.Errorf("pool %+v: %d %s; want 400 on %s", bad.p.Spec, r.status, r.body, bad.field)
		}
	}
	e.must(http.StatusCreated, "POST", pools, e.admin, pool("ext", "192.0.2.0/24", "192.0.2.10", "192.0.2.11"))
	if r := e.do("POST", pools, e.admin, pool("ext2", "192.0.2.0/24", "192.0.2.11", "192.0.2.20")); r.status != http.StatusBadRequest || !strings.Contains(r.apiError().Message, `"ext"`) {
		t.Fatalf("overlapping pool: %d %s", r.status, r.body)
	}
	member := e.userToken("m", map[string]api.Role{"default": api.RoleMember})
	e.must(http.StatusForbidden, "POST", pools, member, pool("mine", "198.51.100.0/24", "198.51.100.1", "198.51.100.2"))
	e.must(http.StatusOK, "GET", pools+"/ext", member, nil)

	e.image("default", "img", false)
	e.instanceOn("default", "web")
	e.instanceOn("default", "db")

	var f1, f2 api.FloatingIP
	e.must(http.StatusCreated, "POST", fips, member, fip("f1", api.FloatingIPSpec{Instance: "web"})).decode(t, &f1)
	if f1.Spec.Pool != "ext" || f1.Status.Address != "192.0.2.10" || f1.Spec.Instance != "web" {
		t.Fatalf("f1 = %+v", f1)
	}
	e.must(http.StatusCreated, "POST", fips, member, fip("f2", api.FloatingIPSpec{})).decode(t, &f2)
	if f2.Status.Address != "192.0.2.11" {
		t.Fatalf("f2 = %+v", f2)
	}
	if r := e.do("POST", fips, member, fip("f3", api.FloatingIPSpec{})); r.status != http.StatusConflict || r.apiError().Code != ipam.CodeInsufficientAddresses {
		t.Fatalf("full pool: %d %s", r.status, r.body)
	}

	// One floating IP per instance.
	r := e.do("POST", fips+"/f2/associate", member, associateRequest{Instance: "web"})
	if r.status != http.StatusConflict || !strings.Contains(r.apiError().Message, `floating IP "f1"`) {
		t.Fatalf("second association: %d %s", r.status, r.body)
	}
	if r := e.do("POST", fips+"/f2/associate", member, associateRequest{Instance: "nope"}); r.status != http.StatusBadRequest || r.apiError().Field != "instance" {
		t.Fatalf("association to a missing instance: %d %s", r.status, r.body)
	}
	f1 = api.FloatingIP{}
	e.must(http.StatusOK, "POST", fips+"/f1/disassociate", member, nil).decode(t, &f1)
	if f1.Spec.Instance != "" {
		t.Fatalf("disassociated f1 = %+v", f1.Spec)
	}
	e.must(http.StatusOK, "POST", fips+"/f2/associate", member, associateRequest{Instance: "web"}).decode(t, &f2)
	// Association through PUT goes through the same claim.
	f1.Spec.Instance = "web"
	if r := e.do("PUT", fips+"/f1", member, f1); r.status != http.StatusConflict || r.apiError().Field != "spec.instance" {
		t.Fatalf("PUT second association: %d %s", r.status, r.body)
	}
	f1.Spec.Instance = "db"
	e.must(http.StatusOK, "PUT", fips+"/f1", member, f1).decode(t, &f1)
	f1.Spec.Pool = "other"
	if r := e.do("PUT", fips+"/f1", member, f1); r.status != http.StatusBadRequest || r.apiError().Field != "spec.pool" {
		t.Fatalf("pool change: %d %s", r.status, r.body)
	}

	// Pools with allocations stay; deleting a floating IP frees its address.
	if r := e.do("DELETE", pools+"/ext", e.admin, nil); r.status != http.StatusConflict || !strings.Contains(r.apiError().Message, "f1") {
		t.Fatalf("delete used pool: %d %s", r.status, r.body)
	}
	e.must(http.StatusOK, "DELETE", fips+"/f1", member, nil)
	var f4 api.FloatingIP
	e.must(http.StatusCreated, "POST", fips, member, fip("f4", api.FloatingIPSpec{Instance: "db"})).decode(t, &f4)
	if f4.Status.Address != "192.0.2.10" {
		t.Fatalf("f4 = %+v, want the freed address", f4.Status)
	}
}

func TestProjectNetworking(t *testing.T) {
	e := newEnv(t)
	e.project("blue")
	e.must(http.StatusOK, "GET", "/v1/projects/blue/networks/default", e.admin, nil)
	e.must(http.StatusOK, "GET", "/v1/projects/blue/securitygroups/default", e.admin, nil)
	e.must(http.StatusCreated, "POST", "/v1/projects/blue/networks", e.admin, network("extra", "10.0.0.0/24"))
	e.must(http.StatusOK, "DELETE", "/v1/projects/blue", e.admin, nil)
	for _, k := range []*api.Kind{api.NetworkKind, api.SecurityGroupKind} {
		if objs, _, _ := e.store.List(context.Background(), k, "blue", store.ListOptions{}); len(objs) != 0 {
			t.Errorf("%s left after project delete: %d", k.Plural, len(objs))
		}
	}

	// A project made by an older version gets its defaults on Bootstrap.
	ctx := context.Background()
	if _, err := e.store.Create(ctx, &api.Project{Metadata: api.ObjectMeta{Name: "old"}}, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	var n api.Network
	if err := e.store.Get(ctx, api.NetworkKind, "old", "default", &n); err != nil || n.Status.VNI < ipam.FirstVNI {
		t.Fatalf("default network of old project: %+v, %v", n, err)
	}
	before := e.fake.revision()
	if _, err := e.srv.Bootstrap(ctx); err != nil || e.fake.revision() != before {
		t.Fatalf("second Bootstrap: %v, wrote %d times", err, e.fake.revision()-before)
	}
}

func TestHostNetworkAccess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, h := range []string{"h1", "h2"} {
		if _, err := e.store.Create(ctx, &api.HostNetwork{Metadata: api.ObjectMeta{Name: h}}, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tok := e.hostToken("h1")
	var hn api.HostNetwork
	e.must(http.StatusOK, "GET", "/v1/hostnetworks/h1", tok, nil).decode(t, &hn)
	e.must(http.StatusNotFound, "GET", "/v1/hostnetworks/h2", tok, nil)
	var list api.List[api.HostNetwork]
	e.must(http.StatusOK, "GET", "/v1/hostnetworks", tok, nil).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].Metadata.Name != "h1" {
		t.Fatalf("host sees %+v", list.Items)
	}
	e.must(http.StatusOK, "GET", "/v1/hostnetworks?host=h1", tok, nil).decode(t, &list)
	if len(list.Items) != 1 {
		t.Fatalf("?host=h1: %+v", list.Items)
	}
	e.must(http.StatusForbidden, "GET", "/v1/hostnetworks?host=h2", tok, nil)
	hn.Status = api.HostNetworkStatus{ObservedGeneration: 1, Applied: true}
	e.must(http.StatusOK, "PUT", "/v1/hostnetworks/h1/status", tok, hn)
	hn.Spec.Networks = []api.HostNetworkEntry{{Name: "x"}}
	e.must(http.StatusForbidden, "PUT", "/v1/hostnetworks/h1", tok, hn)
	e.must(http.StatusNotFound, "GET", "/v1/projects/default/networks", tok, nil)
}

func TestInstanceFixedAddress(t *testing.T) {
	e := newEnvLowestFirst(t)
	e.image("default", "img", false)
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("lan", "10.7.0.0/24"))

	var a api.Instance
	e.instanceOn("default", "a", api.NetworkAttachment{Network: "lan", IP: "10.7.0.42"}).decode(t, &a)
	if len(a.Status.Interfaces) != 1 || a.Status.Interfaces[0] != (api.Interface{Network: "lan", IP: "10.7.0.42", MAC: "0a:58:0a:07:00:2a"}) {
		t.Fatalf("interfaces = %+v", a.Status.Interfaces)
	}
	if a.Spec.Networks[0].IP != "10.7.0.42" {
		t.Errorf("spec ip = %q, want it kept", a.Spec.Networks[0].IP)
	}
	// A free address is never the one asked for by another.
	var b api.Instance
	e.instanceOn("default", "b", api.NetworkAttachment{Network: "lan"}).decode(t, &b)
	if b.Status.Interfaces[0].IP == "10.7.0.42" {
		t.Fatalf("free address handed out twice")
	}

	bad := []struct {
		name, ip, msg string
	}{
		{"not an address", "10.7.0.x", "not an IPv4 address"},
		{"ipv6", "fd00::1", "not an IPv4 address"},
		{"outside", "10.8.0.5", "outside network lan"},
		{"network address", "10.7.0.0", "network address"},
		{"broadcast", "10.7.0.255", "broadcast address"},
		{"gateway", "10.7.0.1", "gateway"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			r := e.instanceOn("default", "x", api.NetworkAttachment{Network: "lan", IP: tt.ip})
			if r.status != http.StatusBadRequest || r.apiError().Field != "spec.networks[0].ip" || !strings.Contains(r.apiError().Message, tt.msg) {
				t.Fatalf("%d %s; want 400 on spec.networks[0].ip saying %q", r.status, r.body, tt.msg)
			}
			if e.fake.revision() != before {
				t.Errorf("store changed")
			}
		})
	}

	// Taken: 409 naming the field and the holder.
	r := e.instanceOn("default", "c", api.NetworkAttachment{Network: "default"}, api.NetworkAttachment{Network: "lan", IP: "10.7.0.42"})
	if r.status != http.StatusConflict || r.apiError().Field != "spec.networks[1].ip" || r.apiError().Code != ipam.CodeAddressInUse ||
		!strings.Contains(r.apiError().Message, "10.7.0.42") || !strings.Contains(r.apiError().Message, "by a") {
		t.Fatalf("taken address: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/projects/default/instances/c", e.admin, nil); r.status != http.StatusNotFound {
		t.Fatalf("refused instance exists: %d", r.status)
	}

	// Deleting the holder (never placed: removed at once) releases the
	// address for whoever asks next.
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/a", e.admin, nil)
	var c api.Instance
	e.instanceOn("default", "c", api.NetworkAttachment{Network: "lan", IP: "10.7.0.42"}).decode(t, &c)
	if c.Status.Interfaces[0].IP != "10.7.0.42" {
		t.Fatalf("address not reusable after delete: %+v", c.Status.Interfaces)
	}
}

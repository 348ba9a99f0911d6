package cli

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// seedNetworking stores networks, security groups with rules, a pool, a
// floating IP and instances in project demo, in place of the project's
// default network and group.
func seedNetworking(t *testing.T, c *cloud) {
	t.Helper()
	now := time.Now()
	c.remove(t, api.NetworkKind, "demo", "default")
	c.remove(t, api.SecurityGroupKind, "demo", "default")
	nat := false
	c.add(t, &api.Network{Kind: "Network",
		Metadata: api.ObjectMeta{Name: "backend", Project: "demo", CreationTimestamp: now.Add(-time.Hour)},
		Spec:     api.NetworkSpec{CIDR: "10.20.0.0/24"}, Status: api.NetworkStatus{VNI: 4097}})
	c.add(t, &api.Network{Kind: "Network",
		Metadata: api.ObjectMeta{Name: "isolated", Project: "demo", CreationTimestamp: now.Add(-time.Minute)},
		Spec:     api.NetworkSpec{CIDR: "10.30.0.0/24", Gateway: "10.30.0.254", NAT: &nat}})
	c.add(t, &api.SecurityGroup{Kind: "SecurityGroup",
		Metadata: api.ObjectMeta{Name: "web", Project: "demo", CreationTimestamp: now},
		Spec: api.SecurityGroupSpec{Description: "public web", Rules: []api.SecurityGroupRule{
			{ID: "r1", Direction: "ingress", Protocol: "tcp", PortMin: 80, PortMax: 80, CIDR: "0.0.0.0/0"},
			{ID: "r2", Direction: "ingress", Protocol: "udp", PortMin: 8000, PortMax: 8080, SourceGroup: "default"},
			{ID: "r3", Direction: "egress", Protocol: "tcp", PortMin: 1, PortMax: 65535, CIDR: "10.0.0.0/8"},
			{ID: "r4", Direction: "ingress", Protocol: "icmp", CIDR: "192.168.0.0/16"},
		}}})
	c.add(t, &api.SecurityGroup{Kind: "SecurityGroup",
		Metadata: api.ObjectMeta{Name: "empty", Project: "demo", CreationTimestamp: now}})
	c.add(t, &api.FloatingIPPool{Kind: "FloatingIPPool", Metadata: api.ObjectMeta{Name: "public"},
		Spec:   api.FloatingIPPoolSpec{CIDR: "10.99.0.0/24", Start: "10.99.0.200", End: "10.99.0.250"},
		Status: api.FloatingIPPoolStatus{Allocated: 3}})
	c.add(t, &api.FloatingIP{Kind: "FloatingIP",
		Metadata: api.ObjectMeta{Name: "ip1", Project: "demo", CreationTimestamp: now},
		Spec:     api.FloatingIPSpec{Pool: "public", Instance: "web-1"},
		Status:   api.FloatingIPStatus{Address: "10.99.0.201", InstanceIP: "10.0.0.5", Host: "host-a"}})
	seedInstances(t, c)
	c.backdate(t, api.NetworkKind, "backend", now.Add(-time.Hour))
	c.backdate(t, api.NetworkKind, "isolated", now.Add(-time.Minute))
}

// normalJSON decodes a request body and drops what the client need not
// send: a zero creation time and an empty status.
func normalJSON(t *testing.T, s string) any {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, s)
	}
	if m, ok := v.(map[string]any); ok {
		if meta, ok := m["metadata"].(map[string]any); ok && meta["creationTimestamp"] == "0001-01-01T00:00:00Z" {
			delete(meta, "creationTimestamp")
		}
		if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
			delete(m, "status")
		}
	}
	return v
}

// writes returns the requests that are not reads.
func writes(reqs []request) []request {
	var out []request
	for _, r := range reqs {
		if r.Method != "GET" {
			out = append(out, r)
		}
	}
	return out
}

func TestNetworkingCommandsSendRequests(t *testing.T) {
	tests := []struct {
		args         []string
		method, path string
		body         string // exact JSON, "" for none
		out          string // in stdout
	}{
		{[]string{"network", "create", "front", "--cidr", "10.40.0.0/24"},
			"POST", "/v1/projects/demo/networks",
			`{"kind":"Network","metadata":{"name":"front","project":"demo"},"spec":{"cidr":"10.40.0.0/24"}}`,
			"10.40.0.1"},
		{[]string{"network", "create", "iso", "--cidr", "10.50.0.0/16", "--gateway", "10.50.255.254",
			"--dns", "10.0.0.53", "--dns", "10.0.0.54", "--no-nat"},
			"POST", "/v1/projects/demo/networks",
			`{"kind":"Network","metadata":{"name":"iso","project":"demo"},"spec":{"cidr":"10.50.0.0/16",` +
				`"gateway":"10.50.255.254","dns":["10.0.0.53","10.0.0.54"],"nat":false}}`,
			"10.50.255.254"},
		{[]string{"network", "delete", "backend"}, "DELETE", "/v1/projects/demo/networks/backend", "", "network/backend deleted"},
		{[]string{"sg", "create", "db", "--description", "databases"},
			"POST", "/v1/projects/demo/securitygroups",
			`{"kind":"SecurityGroup","metadata":{"name":"db","project":"demo"},"spec":{"description":"databases"}}`,
			"databases"},
		{[]string{"sg", "delete", "web"}, "DELETE", "/v1/projects/demo/securitygroups/web", "", "securitygroup/web deleted"},
		{[]string{"sg", "rule", "add", "empty", "--protocol", "tcp", "--port", "443", "--cidr", "0.0.0.0/0"},
			"POST", "/v1/projects/demo/securitygroups/empty/rules",
			`{"direction":"ingress","protocol":"tcp","portMin":443,"portMax":443,"cidr":"0.0.0.0/0"}`,
			"443"},
		{[]string{"sg", "rule", "add", "empty", "--protocol", "udp", "--port", "8000-8080", "--source-group", "web", "--egress"},
			"POST", "/v1/projects/demo/securitygroups/empty/rules",
			`{"direction":"egress","protocol":"udp","portMin":8000,"portMax":8080,"sourceGroup":"web"}`,
			"sg:web"},
		{[]string{"sg", "rule", "add", "empty", "--protocol", "TCP", "--cidr", "10.0.0.0/8"},
			"POST", "/v1/projects/demo/securitygroups/empty/rules",
			`{"direction":"ingress","protocol":"tcp","portMin":1,"portMax":65535,"cidr":"10.0.0.0/8"}`,
			"all"},
		{[]string{"sg", "rule", "add", "empty", "--protocol", "icmp", "--cidr", "192.168.1.0/24"},
			"POST", "/v1/projects/demo/securitygroups/empty/rules",
			`{"direction":"ingress","protocol":"icmp","cidr":"192.168.1.0/24"}`,
			"192.168.1.0/24"},
		{[]string{"sg", "rule", "delete", "web", "r2"}, "DELETE", "/v1/projects/demo/securitygroups/web/rules/r2", "",
			"securitygroup/web: rule r2 deleted"},
		{[]string{"fip", "pool", "create", "ext", "--cidr", "10.98.0.0/24", "--range", "10.98.0.10-10.98.0.19"},
			"POST", "/v1/floatingippools",
			`{"kind":"FloatingIPPool","metadata":{"name":"ext"},"spec":{"cidr":"10.98.0.0/24","start":"10.98.0.10","end":"10.98.0.19"}}`,
			"0/10"},
		{[]string{"fip", "pool", "delete", "public"}, "DELETE", "/v1/floatingippools/public", "", "floatingippool/public deleted"},
		{[]string{"fip", "allocate", "web-ip", "--pool", "public", "--instance", "web-1"},
			"POST", "/v1/projects/demo/floatingips",
			`{"kind":"FloatingIP","metadata":{"name":"web-ip","project":"demo"},"spec":{"pool":"public","instance":"web-1"}}`,
			"web-ip"},
		{[]string{"fip", "associate", "ip1", "db-with-a-long-name"},
			"POST", "/v1/projects/demo/floatingips/ip1/associate", `{"instance":"db-with-a-long-name"}`,
			"db-with-a-long-name"},
		{[]string{"fip", "disassociate", "ip1"}, "POST", "/v1/projects/demo/floatingips/ip1/disassociate", "", "10.99.0.201"},
		{[]string{"fip", "release", "ip1"}, "DELETE", "/v1/projects/demo/floatingips/ip1", "", "floatingip/ip1 released"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := newCloud(t)
			c.useConfig(t)
			seedNetworking(t, c)
			r := runCLI(t, nil, "", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			w := writes(c.requestsSeen())
			if len(w) != 1 {
				t.Fatalf("want one write request, got %+v", w)
			}
			if w[0].Method != tt.method || w[0].Path != tt.path {
				t.Fatalf("sent %s %s, want %s %s", w[0].Method, w[0].Path, tt.method, tt.path)
			}
			if got, want := normalJSON(t, w[0].Body), normalJSON(t, tt.body); !reflect.DeepEqual(got, want) {
				t.Fatalf("body %s\nwant %s", w[0].Body, tt.body)
			}
			if tt.method == "POST" && api.KindByPlural(path.Base(tt.path)) != nil && w[0].Key == "" {
				t.Errorf("create sent without Idempotency-Key")
			}
			if !strings.Contains(r.stdout, tt.out) {
				t.Errorf("stdout lacks %q:\n%s", tt.out, r.stdout)
			}
		})
	}
}

func TestNetworkingBadFlagsSendNothing(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "n"}, "--cidr: required"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.0"}, "--cidr"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.1/24"}, "did you mean 10.20.0.0/24"},
		{[]string{"network", "create", "n", "--cidr", "fd00::/64"}, "--cidr: fd00::/64 is not IPv4"},
		{[]string{"network", "create", "n", "--cidr", "10.0.0.0/8"}, "--cidr: 10.0.0.0/8 is a /8"},
		{[]string{"network", "create", "n", "--cidr", "10.0.0.0/30"}, "--cidr"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.0/24", "--gateway", "10.21.0.1"}, "--gateway: 10.21.0.1 is outside"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.0/24", "--gateway", "10.20.0.255"}, "--gateway"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.0/24", "--gateway", "gw"}, "--gateway"},
		{[]string{"network", "create", "n", "--cidr", "10.20.0.0/24", "--dns", "dns.example"}, "--dns"},
		{[]string{"network", "create", "Bad_Name", "--cidr", "10.20.0.0/24"}, "network name"},
		{[]string{"sg", "create", "x-"}, "security group name"},
		{[]string{"sg", "rule", "add", "web", "--cidr", "0.0.0.0/0"}, "--protocol: required"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "sctp", "--cidr", "0.0.0.0/0"}, "--protocol: unknown protocol"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "0", "--cidr", "0.0.0.0/0"}, "--port: port 0 is out of range"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "65536", "--cidr", "0.0.0.0/0"}, "--port"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "http", "--cidr", "0.0.0.0/0"}, "--port"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "90-80", "--cidr", "0.0.0.0/0"}, "--port: range 90-80 is backwards"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "80-", "--cidr", "0.0.0.0/0"}, "--port"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "icmp", "--port", "8", "--cidr", "0.0.0.0/0"}, "--port: protocol icmp has no ports"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "all", "--port", "80", "--cidr", "0.0.0.0/0"}, "--port"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp"}, "--cidr: required"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--cidr", "0.0.0.0/0", "--source-group", "db"}, "--source-group"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--cidr", "0.0.0.0"}, "--cidr"},
		{[]string{"sg", "rule", "add", "web", "--protocol", "tcp", "--source-group", "DB"}, "--source-group"},
		{[]string{"sg", "rule", "delete", "web"}, "wants SG RULE-ID"},
		{[]string{"fip", "pool", "create", "p", "--range", "10.99.0.1-10.99.0.9"}, "--cidr: required"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24"}, "--range: required"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24", "--range", "10.99.0.9"}, "--range"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24", "--range", "10.99.0.9-10.99.1.9"}, "--range: 10.99.1.9 is outside"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24", "--range", "10.99.0.9-10.99.0.2"}, "--range: 10.99.0.9-10.99.0.2 is backwards"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24", "--range", "10.99.0.0-10.99.0.2"}, "--range"},
		{[]string{"fip", "pool", "create", "p", "--cidr", "10.99.0.0/24", "--range", "x-10.99.0.2"}, "--range"},
		{[]string{"fip", "allocate", "a", "b"}, "at most one NAME"},
		{[]string{"fip", "allocate", "--pool", "Pub"}, "--pool"},
		{[]string{"fip", "allocate", "--instance", "web_1"}, "--instance"},
		{[]string{"fip", "associate", "ip1"}, "wants FIP INSTANCE"},
		{[]string{"fip", "associate", "ip1", "Web"}, "instance name"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--security-group", "web"},
			`"--security-group" flag: give --network NAME before`},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--network", "n", "--network", "n"},
			"--network: network n is given twice"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--network", "n", "--security-group", "s",
			"--security-group", "s"}, "--security-group: security group s is given twice"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--network", "N"}, `"--network" flag`},
	}
	c := newCloud(t)
	c.useConfig(t)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c.rec.Reset()
			r := runCLI(t, nil, "", tt.args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1 (stdout %q)", r.code, r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q lacks %q", r.stderr, tt.want)
			}
			if n := len(c.requestsSeen()); n != 0 {
				t.Fatalf("%d request(s) sent for bad input", n)
			}
		})
	}
}

func TestInstanceCreateNetworks(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []api.NetworkAttachment
	}{
		{"server defaults", nil, nil},
		{"groups follow their network",
			[]string{"--network", "front", "--security-group", "web", "--security-group", "ssh", "--network", "back"},
			[]api.NetworkAttachment{{Network: "front", SecurityGroups: []string{"web", "ssh"}}, {Network: "back"}}},
		{"second network with its own group",
			[]string{"--network", "front", "--network", "back", "--security-group", "db"},
			[]api.NetworkAttachment{{Network: "front"}, {Network: "back", SecurityGroups: []string{"db"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCloud(t)
			c.useConfig(t)
			for i, name := range []string{"front", "back"} {
				c.Do(t, "POST", "/v1/projects/demo/networks", &api.Network{Metadata: api.ObjectMeta{Name: name},
					Spec: api.NetworkSpec{CIDR: fmt.Sprintf("10.4%d.0.0/24", i)}}, nil)
			}
			for _, name := range []string{"web", "ssh", "db"} {
				c.Do(t, "POST", "/v1/projects/demo/securitygroups", &api.SecurityGroup{Metadata: api.ObjectMeta{Name: name}}, nil)
			}
			c.rec.Reset()
			args := append([]string{"instance", "create", "app", "--image", "alpine", "--flavor", "small"}, tt.args...)
			if r := runCLI(t, nil, "", args...); r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			w := writes(c.requestsSeen())
			if len(w) != 1 {
				t.Fatalf("want one create, got %+v", w)
			}
			var inst api.Instance
			if err := json.Unmarshal([]byte(w[0].Body), &inst); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inst.Spec.Networks, tt.want) {
				t.Fatalf("spec.networks %+v, want %+v", inst.Spec.Networks, tt.want)
			}
			if tt.want == nil && strings.Contains(w[0].Body, `"networks"`) {
				t.Errorf("without --network the body should leave networks to the server: %s", w[0].Body)
			}
		})
	}
}

// tableRows splits table output into header and rows of fields.
func tableRows(t *testing.T, out string) (head []string, rows map[string][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a header and rows:\n%s", out)
	}
	rows = map[string][]string{}
	for _, l := range lines[1:] {
		fields := strings.Fields(l)
		rows[fields[0]] = fields
	}
	return strings.Fields(lines[0]), rows
}

func TestNetworkingTables(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedNetworking(t, c)
	tests := []struct {
		args []string
		head []string
		rows map[string][]string
	}{
		{[]string{"network", "list"}, []string{"NAME", "CIDR", "GATEWAY", "NAT", "VPC", "VNI", "AGE"}, map[string][]string{
			"backend":  {"backend", "10.20.0.0/24", "10.20.0.1", "yes", "-", "4097", "1h"},
			"isolated": {"isolated", "10.30.0.0/24", "10.30.0.254", "no", "-", "-", "1m"},
		}},
		{[]string{"sg", "list"}, []string{"NAME", "RULES", "DESCRIPTION", "AGE"}, map[string][]string{
			"empty": {"empty", "0", "-", "0s"},
			"web":   {"web", "4", "public", "web", "0s"},
		}},
		{[]string{"fip", "pool", "list"}, []string{"NAME", "CIDR", "RANGE", "ALLOCATED"}, map[string][]string{
			"public": {"public", "10.99.0.0/24", "10.99.0.200-10.99.0.250", "3/51"},
		}},
		{[]string{"fip", "list"}, []string{"NAME", "ADDRESS", "INSTANCE", "INSTANCE-IP", "HOST", "AGE"}, map[string][]string{
			"ip1": {"ip1", "10.99.0.201", "web-1", "10.0.0.5", "host-a", "0s"},
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, "", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			head, rows := tableRows(t, r.stdout)
			if !reflect.DeepEqual(head, tt.head) {
				t.Errorf("header %q, want %q", head, tt.head)
			}
			if !reflect.DeepEqual(rows, tt.rows) {
				t.Errorf("rows %q\nwant %q", rows, tt.rows)
			}
		})
	}

	t.Run("sg get lists rules", func(t *testing.T) {
		r := runCLI(t, nil, "", "sg", "get", "web")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		summary, rules, ok := strings.Cut(r.stdout, "\n\n")
		if !ok || !strings.Contains(summary, "public web") {
			t.Fatalf("want the group, a blank line and its rules:\n%s", r.stdout)
		}
		head, rows := tableRows(t, rules)
		if want := []string{"ID", "DIRECTION", "PROTOCOL", "PORTS", "REMOTE"}; !reflect.DeepEqual(head, want) {
			t.Errorf("rules header %q, want %q", head, want)
		}
		want := map[string][]string{
			"r1": {"r1", "ingress", "tcp", "80", "0.0.0.0/0"},
			"r2": {"r2", "ingress", "udp", "8000-8080", "sg:default"},
			"r3": {"r3", "egress", "tcp", "all", "10.0.0.0/8"},
			"r4": {"r4", "ingress", "icmp", "-", "192.168.0.0/16"},
		}
		if !reflect.DeepEqual(rows, want) {
			t.Errorf("rules %q\nwant %q", rows, want)
		}
		r = runCLI(t, nil, "", "sg", "get", "empty")
		if r.code != 0 || !strings.Contains(r.stdout, "No rules") {
			t.Errorf("group without rules: exit %d stdout %q", r.code, r.stdout)
		}
	})

	t.Run("sg get yaml", func(t *testing.T) {
		r := runCLI(t, nil, "", "sg", "get", "web", "-o", "yaml")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var g api.SecurityGroup
		if err := yaml.Unmarshal([]byte(r.stdout), &g); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, r.stdout)
		}
		if len(g.Spec.Rules) != 4 || g.Spec.Rules[1].SourceGroup != "default" {
			t.Fatalf("rules %+v", g.Spec.Rules)
		}
	})

	t.Run("list json", func(t *testing.T) {
		r := runCLI(t, nil, "", "network", "list", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var l output.List[api.Network]
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		if l.Kind != "NetworkList" || len(l.Items) != 2 || l.Items[0].Status.VNI != 4097 {
			t.Fatalf("got %+v", l)
		}
	})

	t.Run("empty list", func(t *testing.T) {
		c.Project(t, "other")
		c.remove(t, api.SecurityGroupKind, "other", "default")
		r := runCLI(t, nil, "", "--project", "other", "sg", "list")
		if r.code != 0 || r.stdout != "" || r.stderr != "No security groups found.\n" {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestFloatingIPAllocateDefaultName(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.add(t, &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "public"},
		Spec: api.FloatingIPPoolSpec{CIDR: "10.99.0.0/24", Start: "10.99.0.200", End: "10.99.0.250"}})
	var names []string
	for range 2 {
		r := runCLI(t, nil, "", "fip", "allocate", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var fip api.FloatingIP
		if err := json.Unmarshal([]byte(r.stdout), &fip); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^fip-[a-z0-9]{5}$`).MatchString(fip.Metadata.Name) {
			t.Fatalf("default name %q is not fip-<5 random>", fip.Metadata.Name)
		}
		if fip.Status.Address == "" {
			t.Fatalf("want the server's address, got %+v", fip)
		}
		if w := writes(c.requestsSeen()); strings.Contains(w[len(w)-1].Body, `"pool"`) {
			t.Fatalf("a pool was asked for: %s", w[len(w)-1].Body)
		}
		names = append(names, fip.Metadata.Name)
	}
	if names[0] == names[1] {
		t.Fatalf("two allocations got the same name %s", names[0])
	}
}

func TestFloatingIPAssociateShowsTarget(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedNetworking(t, c)
	c.add(t, &api.FloatingIP{Kind: "FloatingIP", Metadata: api.ObjectMeta{Name: "spare", Project: "demo"},
		Status: api.FloatingIPStatus{Address: "10.99.0.210"}})
	r := runCLI(t, nil, "", "fip", "associate", "spare", "web-1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	_, rows := tableRows(t, r.stdout)
	// The instance's address and host follow once the network controller
	// has seen the association.
	if want := []string{"spare", "10.99.0.210", "web-1"}; !reflect.DeepEqual(rows["spare"][:3], want) {
		t.Fatalf("row %q, want %q", rows["spare"], want)
	}
	r = runCLI(t, nil, "", "fip", "associate", "nope", "web-1")
	if r.code != 1 || !strings.Contains(r.stderr, "associate floating IP nope:") {
		t.Fatalf("missing floating IP: exit %d stderr %q", r.code, r.stderr)
	}
	if got := c.object(t, api.FloatingIPKind, "demo", "spare").(*api.FloatingIP).Spec.Instance; got != "web-1" {
		t.Fatalf("stored instance %q", got)
	}

	// Release goes on past a failure and reports it.
	r = runCLI(t, nil, "", "fip", "release", "nope", "spare")
	if r.code != 1 || !strings.Contains(r.stderr, `release floating IP nope: FloatingIP "nope" not found`) {
		t.Fatalf("release: exit %d stderr %q", r.code, r.stderr)
	}
	if r.stdout != "floatingip/spare released\n" || c.object(t, api.FloatingIPKind, "demo", "spare") != nil {
		t.Fatalf("spare not released: stdout %q", r.stdout)
	}
}

func TestHostListShowsHollowHosts(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.add(t, &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: "real-1"},
		Status: api.HostStatus{Phase: api.HostReady}})
	r := runCLI(t, nil, "", "host", "list")
	if r.code != 0 || strings.Contains(r.stdout, "HOLLOW") {
		t.Fatalf("without hollow hosts no HOLLOW column: exit %d\n%s", r.code, r.stdout)
	}
	c.add(t, &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: "hollow-1",
		Labels: map[string]string{api.LabelHollow: "true"}}, Status: api.HostStatus{Phase: api.HostReady}})
	r = runCLI(t, nil, "", "host", "list")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	head, rows := tableRows(t, r.stdout)
	if head[len(head)-1] != "HOLLOW" {
		t.Fatalf("header %q lacks HOLLOW at the end", head)
	}
	if h := rows["hollow-1"]; h[len(h)-1] != "yes" {
		t.Errorf("hollow-1 row %q", h)
	}
	if h := rows["real-1"]; h[len(h)-1] != "no" {
		t.Errorf("real-1 row %q", h)
	}
}

func TestNetworkingCompletion(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedNetworking(t, c)
	tests := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"instance", "create", "x", "--network", ""}, []string{"backend", "isolated"}, nil},
		{[]string{"instance", "create", "x", "--network", "backend", "--security-group", "w"}, []string{"web"}, []string{"empty"}},
		{[]string{"sg", "rule", "add", ""}, []string{"web", "empty"}, nil},
		{[]string{"sg", "rule", "delete", "web", ""}, []string{"r1", "r4"}, []string{"web"}},
		{[]string{"fip", "associate", ""}, []string{"ip1"}, []string{"web-1"}},
		{[]string{"fip", "associate", "ip1", ""}, []string{"web-1", "db-with-a-long-name"}, []string{"ip1"}},
		{[]string{"fip", "allocate", "--pool", ""}, []string{"public"}, nil},
		{[]string{"network", "delete", "backend", ""}, []string{"isolated"}, []string{"backend"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, "", append([]string{"__complete"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			lines := strings.Split(r.stdout, "\n")
			for _, w := range tt.want {
				if !hasCompletion(lines, w) {
					t.Errorf("completions lack %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.notWant {
				if hasCompletion(lines, w) {
					t.Errorf("completions offer %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

// hasCompletion reports whether the completion lines ("name" or
// "name<TAB>description") offer name.
func hasCompletion(lines []string, name string) bool {
	for _, l := range lines {
		if n, _, _ := strings.Cut(l, "\t"); n == name {
			return true
		}
	}
	return false
}

func TestVPCCommands(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	ok := func(args ...string) string {
		t.Helper()
		r := runCLI(t, nil, "", args...)
		if r.code != 0 {
			t.Fatalf("ouro %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	ok("vpc", "create", "prod", "--cidr", "10.0.0.0/16")
	ok("network", "create", "web", "--vpc", "prod", "--cidr", "10.0.1.0/24")
	head, rows := tableRows(t, ok("vpc", "list"))
	if !reflect.DeepEqual(head, []string{"NAME", "CIDR", "DEFAULT", "ROUTES", "AGE"}) ||
		!reflect.DeepEqual(rows["prod"][:4], []string{"prod", "10.0.0.0/16", "no", "10.0.0.0/16→local,0.0.0.0/0→nat"}) ||
		rows["default"] == nil || rows["default"][2] != "yes" {
		t.Errorf("vpc list: %q %q", head, rows)
	}
	if _, rows := tableRows(t, ok("network", "list")); rows["web"][4] != "prod" || rows["default"][4] != "default" {
		t.Errorf("network list: %q", rows)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "db", "--vpc", "prod", "--cidr", "10.0.1.128/25"}, "overlaps"},
		{[]string{"network", "create", "db", "--vpc", "prod", "--cidr", "10.9.0.0/24"}, "not a subnet"},
		{[]string{"network", "create", "db", "--vpc", "nope", "--cidr", "10.0.2.0/24"}, "not found"},
		{[]string{"vpc", "create", "big", "--cidr", "10.0.0.0/8"}, "/16 to /28"},
		{[]string{"vpc", "delete", "prod"}, "in use"},
	} {
		r := runCLI(t, nil, "", tt.args...)
		if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), tt.want) {
			t.Errorf("ouro %s: exit %d, %s; want an error with %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
	}
	ok("network", "delete", "web")
	ok("vpc", "delete", "prod")
}

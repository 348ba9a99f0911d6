package bootstrap

import (
	"strings"
	"testing"
)

func TestParseInventory(t *testing.T) {
	good := `
cloud: lab
apiVIP: 10.0.0.100/24
ssh: {user: admin, key: keys/id}
hosts:
- {name: s1, address: 10.0.0.11, roles: [server, agent], labels: {zone: a}}
- {name: pi1, address: 10.0.0.21, roles: [agent], ssh: {user: pi, port: 2222}, paths: {data: /srv/ouro}}
- {name: vm1, instance: nested/vm-1, roles: [agent], drivers: [container]}
drivers: [vm]
`
	inv, err := ParseInventory("/etc/lab/inventory.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	s1, pi1 := inv.Hosts[0], inv.Hosts[1]
	if s1.SSH.User != "admin" || s1.SSH.Key != "/etc/lab/keys/id" || s1.SSH.Port != 22 || s1.Paths.Binary != DefaultBinary || s1.Paths.Data != DefaultDataDir {
		t.Errorf("defaults of s1: %+v", s1)
	}
	if pi1.SSH.User != "pi" || pi1.SSH.Port != 2222 || pi1.Paths.Data != "/srv/ouro" {
		t.Errorf("overrides of pi1: %+v", pi1)
	}
	if d := inv.Hosts[2].Drivers; len(d) != 1 || d[0] != DriverContainer || len(s1.Drivers) != 1 || s1.Drivers[0] != DriverVM {
		t.Errorf("drivers: vm1 %v, s1 %v", d, s1.Drivers)
	}
	if len(inv.Servers()) != 1 || len(inv.Agents()) != 3 || inv.Packages != "install" {
		t.Errorf("servers %d, agents %d, packages %q", len(inv.Servers()), len(inv.Agents()), inv.Packages)
	}

	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], rool: x}\n", "field rool not found"},
		{"no hosts", "cloud: lab\n", "hosts: the inventory names no host"},
		{"no server", "hosts:\n- {name: a, address: 10.0.0.1, roles: [agent]}\n", "no host has the role server"},
		{"two servers", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server]}\n- {name: b, address: 10.0.0.2, roles: [server]}\n", "odd number"},
		{"bad role", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server, db]}\n", `hosts[0].roles: "db"`},
		{"no roles", "hosts:\n- {name: a, address: 10.0.0.1}\n", "hosts[0].roles"},
		{"address and instance", "hosts:\n- {name: a, address: 10.0.0.1, instance: x, roles: [server]}\n", "exactly one of address"},
		{"neither", "hosts:\n- {name: a, roles: [server]}\n", "exactly one of address"},
		{"bad address", "hosts:\n- {name: a, address: 'a;b', roles: [server]}\n", `hosts[0].address: "a;b"`},
		{"same address", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server]}\n- {name: b, address: 10.0.0.1, roles: [agent]}\n", "also the address of a"},
		{"same name", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server]}\n- {name: a, address: 10.0.0.2, roles: [agent]}\n", "named twice"},
		{"bad name", "hosts:\n- {name: 'A B', address: 10.0.0.1, roles: [server]}\n", "hosts[0].name"},
		{"bad instance", "hosts:\n- {name: a, instance: 'x;y', roles: [server]}\n", "hosts[0].instance"},
		{"bad vip", "apiVIP: 10.0.0.100\nhosts:\n- {name: a, address: 10.0.0.1, roles: [server]}\n", "apiVIP"},
		{"bad port", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], ssh: {port: 70000}}\n", "hosts[0].ssh.port"},
		{"user option", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], ssh: {user: -oProxyCommand=x}}\n", "hosts[0].ssh.user"},
		{"relative path", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], paths: {data: var/ouro}}\n", "hosts[0].paths.data"},
		{"root path", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], paths: {data: /}}\n", "hosts[0].paths.data"},
		{"packages", "packages: maybe\nhosts:\n- {name: a, address: 10.0.0.1, roles: [server]}\n", "packages"},
		{"driver", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], drivers: [lxc]}\n", "hosts[0].drivers"},
		{"label", "hosts:\n- {name: a, address: 10.0.0.1, roles: [server], labels: {'a=b': c}}\n", "hosts[0].labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInventory("inv.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "inv.yaml: ") {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestPackages(t *testing.T) {
	for _, tc := range []struct {
		arch           string
		roles, drivers []string
		ceph           bool
		want, not      string
	}{
		{"amd64", []string{RoleServer}, nil, false, "ca-certificates", "runc"},
		{"amd64", []string{RoleServer}, nil, false, "ca-certificates", "ceph"},
		{"amd64", []string{RoleAgent}, nil, false, "qemu-system-x86", "qemu-system-arm"},
		{"arm64", []string{RoleServer, RoleAgent}, nil, false, "qemu-efi-aarch64", "qemu-system-x86"},
		{"amd64", []string{RoleAgent}, []string{DriverContainer}, false, "runc crun iproute2", "qemu"},
		{"amd64", []string{RoleAgent}, []string{DriverVM}, false, "nftables dnsmasq-base haproxy keepalived qemu-utils", "runc"},
		{"amd64", []string{RoleServer}, nil, true, "ca-certificates ceph-common", "qemu-block-extra"},
		{"amd64", []string{RoleAgent}, []string{DriverContainer}, true, "ceph-common qemu-block-extra runc", "qemu-system"},
	} {
		got := strings.Join(Packages(tc.arch, tc.roles, tc.drivers, tc.ceph), " ")
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("Packages(%s, %v) = %s; want %s, not %s", tc.arch, tc.roles, got, tc.want, tc.not)
		}
	}
}

func TestUnit(t *testing.T) {
	agent := service{role: RoleAgent, argv: []string{"/usr/local/bin/ouro", "agent", "--label", `rack=a "b" $x 50%`}}
	u := agent.unit("/var/lib/ouro")
	for _, want := range []string{
		"KillMode=process\n", "Restart=always\n", "EnvironmentFile=-/var/lib/ouro/ouro-agent.env\n",
		`ExecStart="/usr/local/bin/ouro" "agent" "--label" "rack=a \"b\" $$x 50%%"`,
	} {
		if !strings.Contains(u, want) {
			t.Errorf("agent unit lacks %q:\n%s", want, u)
		}
	}
	if s := (service{role: RoleServer, argv: []string{"ouro", "server"}}).unit("/d"); strings.Contains(s, "KillMode") {
		t.Errorf("the server's unit kills only its main process:\n%s", s)
	}
	withEnv := service{role: RoleAgent, env: map[string]string{"OURO_JOIN_TOKEN": "t", "A": "b"}}
	if got := withEnv.envText(); got != "A=b\nOURO_JOIN_TOKEN=t\n" {
		t.Errorf("env file %q", got)
	}
}

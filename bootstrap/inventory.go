package bootstrap

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// Roles a host can have.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Defaults of an inventory.
const (
	DefaultCloud   = "ouro"
	DefaultUser    = "root"
	DefaultSSHPort = 22
	DefaultBinary  = "/usr/local/bin/ouro"
	DefaultDataDir = "/var/lib/ouro"
	DefaultAPIPort = 7443
)

// Inventory is what `ouro bootstrap` builds: a cloud's hosts, how to
// reach them and what each runs.
type Inventory struct {
	// Cloud names the cloud: the CLI context written for it.
	Cloud string `yaml:"cloud"`
	// APIVIP is the API's virtual address ADDR/PREFIX, held by one ready
	// server at a time; agents and the CLI use it. Optional.
	APIVIP string `yaml:"apiVIP"`
	// SSH holds the defaults of every host's SSH settings.
	SSH SSH `yaml:"ssh"`
	// Paths holds the defaults of every host's paths.
	Paths Paths `yaml:"paths"`
	// Packages is "install" (default: apt-get installs what is missing)
	// or "check" (hosts without a package mirror: name what is missing).
	Packages string `yaml:"packages"`
	// Drivers is the default of every agent's Drivers.
	Drivers []string `yaml:"drivers"`
	// Ceph says the cloud will use a ceph storage pool (an existing Ceph
	// cluster): every host gets the ceph tools, agents QEMU's rbd driver.
	Ceph  bool   `yaml:"ceph"`
	Hosts []Host `yaml:"hosts"`

	// file is where the inventory was read from, for errors and for
	// paths relative to it.
	file string
}

// SSH is how a host is logged into.
type SSH struct {
	User string `yaml:"user"`
	// Key is a private key file; relative paths are relative to the
	// inventory file, ~ is the home directory.
	Key  string `yaml:"key"`
	Port int    `yaml:"port"`
}

// Paths are where ouro lives on a host.
type Paths struct {
	// Binary is the ouro binary's path (default /usr/local/bin/ouro).
	Binary string `yaml:"binary"`
	// Data is the directory of the server's and the agent's state
	// (default /var/lib/ouro: server/ and agent/ below it).
	Data string `yaml:"data"`
}

// Host is one machine of the inventory.
type Host struct {
	// Name is the host's name in the cloud (its server and agent name).
	Name string `yaml:"name"`
	// Address is where the host is reached over SSH and what it
	// advertises to the cloud. Either Address or Instance.
	Address string `yaml:"address"`
	// Instance names an instance of the current cloud (project/name or
	// name in the CLI's project) reached through the API's port forward;
	// the host then advertises its address on the instance's network.
	Instance string            `yaml:"instance"`
	Roles    []string          `yaml:"roles"`
	Labels   map[string]string `yaml:"labels"`
	// Drivers limits the packages an agent gets (or is checked for) to
	// those of these instance drivers: container (runc, crun) and vm
	// (QEMU). Default: both. It does not change what the agent offers:
	// a VM placed on an agent without QEMU fails there.
	Drivers []string `yaml:"drivers"`
	SSH     SSH      `yaml:"ssh"`
	Paths   Paths    `yaml:"paths"`
}

// Has reports whether h has role.
func (h *Host) Has(role string) bool { return slices.Contains(h.Roles, role) }

// LoadInventory reads and checks an inventory file. Errors name the file,
// the line and the field.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv, err := ParseInventory(path, data)
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// ParseInventory reads an inventory from data (file names it in errors
// and anchors relative paths), fills in the defaults and checks it.
func ParseInventory(file string, data []byte) (*Inventory, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var inv Inventory
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	inv.file = file
	inv.defaults()
	if err := inv.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &inv, nil
}

func (inv *Inventory) defaults() {
	if inv.Cloud == "" {
		inv.Cloud = DefaultCloud
	}
	if inv.Packages == "" {
		inv.Packages = "install"
	}
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		h.SSH.User = first(h.SSH.User, inv.SSH.User, DefaultUser)
		h.SSH.Key = inv.resolve(first(h.SSH.Key, inv.SSH.Key))
		if h.SSH.Port == 0 {
			h.SSH.Port = inv.SSH.Port
		}
		if h.SSH.Port == 0 {
			h.SSH.Port = DefaultSSHPort
		}
		if h.Drivers == nil {
			h.Drivers = inv.Drivers
		}
		h.Paths.Binary = first(h.Paths.Binary, inv.Paths.Binary, DefaultBinary)
		h.Paths.Data = first(h.Paths.Data, inv.Paths.Data, DefaultDataDir)
	}
}

// resolve makes a key path absolute: ~ is the home directory, a relative
// path is relative to the inventory's directory.
func (inv *Inventory) resolve(p string) string {
	switch {
	case p == "":
		return ""
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	case !filepath.IsAbs(p):
		return filepath.Join(filepath.Dir(inv.file), p)
	}
	return p
}

func (inv *Inventory) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if e := api.ValidateName("cloud", inv.Cloud); e != nil {
		bad("cloud", "%s", e.Message)
	}
	if inv.APIVIP != "" {
		if p, err := netip.ParsePrefix(inv.APIVIP); err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 32 {
			bad("apiVIP", "%q is not an IPv4 ADDR/PREFIX such as 10.0.0.100/24", inv.APIVIP)
		}
	}
	if inv.Packages != "install" && inv.Packages != "check" {
		bad("packages", "%q: want install (apt-get installs what is missing) or check (only name it)", inv.Packages)
	}
	if len(inv.Hosts) == 0 {
		bad("hosts", "the inventory names no host")
	}
	names, addrs := map[string]bool{}, map[string]string{}
	servers := 0
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		at := fmt.Sprintf("hosts[%d]", i)
		if e := api.ValidateName(at+".name", h.Name); e != nil {
			bad(at+".name", "%s", e.Message)
		} else if names[h.Name] {
			bad(at+".name", "%q is named twice", h.Name)
		}
		names[h.Name] = true
		switch {
		case (h.Address == "") == (h.Instance == ""):
			bad(at, "give exactly one of address (a machine) or instance (an instance of the current cloud)")
		case h.Address != "":
			if a, err := netip.ParseAddr(h.Address); err != nil || !a.Is4() {
				bad(at+".address", "%q is not an IPv4 address", h.Address)
			} else if other, dup := addrs[h.Address]; dup {
				bad(at+".address", "%s is also the address of %s", h.Address, other)
			}
			addrs[h.Address] = h.Name
		case h.Instance != "":
			project, name, _ := instanceRef(h.Instance)
			if project != "" {
				if e := api.ValidateName(at+".instance", project); e != nil {
					bad(at+".instance", "project %q: %s", project, e.Message)
				}
			}
			if e := api.ValidateName(at+".instance", name); e != nil {
				bad(at+".instance", "%s", e.Message)
			}
		}
		if len(h.Roles) == 0 {
			bad(at+".roles", "give server, agent or both")
		}
		for _, r := range h.Roles {
			if r != RoleServer && r != RoleAgent {
				bad(at+".roles", "%q: a role is server or agent", r)
			}
		}
		if h.Has(RoleServer) {
			servers++
		}
		for _, d := range h.Drivers {
			if d != DriverContainer && d != DriverVM {
				bad(at+".drivers", "%q: a driver is container or vm", d)
			}
		}
		if h.SSH.Port < 1 || h.SSH.Port > 65535 {
			bad(at+".ssh.port", "%d is not a TCP port", h.SSH.Port)
		}
		if h.SSH.User == "" || strings.ContainsAny(h.SSH.User, "@ \t\n:") || strings.HasPrefix(h.SSH.User, "-") {
			bad(at+".ssh.user", "%q is not a user name", h.SSH.User)
		}
		for _, p := range []struct{ field, path string }{{"paths.binary", h.Paths.Binary}, {"paths.data", h.Paths.Data}} {
			if !filepath.IsAbs(p.path) || filepath.Clean(p.path) != p.path || p.path == "/" {
				bad(at+"."+p.field, "%q: want a clean absolute path", p.path)
			}
		}
		for k, v := range h.Labels {
			if strings.ContainsAny(k+v, "=,\n") || k == "" {
				bad(at+".labels", "%q=%q: keys and values may not contain '=', ',' or newlines", k, v)
			}
		}
	}
	switch {
	case servers == 0 && len(inv.Hosts) > 0:
		bad("hosts", "no host has the role server: a cloud needs one (or three, for a control plane that survives one loss)")
	case servers%2 == 0 && servers > 0:
		bad("hosts", "%d servers: etcd needs an odd number (1, 3 or 5) to keep a quorum", servers)
	}
	return errors.Join(errs...)
}

// Servers returns the hosts with the role server, the first one first:
// it starts the cluster, the others join it.
func (inv *Inventory) Servers() []*Host {
	var out []*Host
	for i := range inv.Hosts {
		if inv.Hosts[i].Has(RoleServer) {
			out = append(out, &inv.Hosts[i])
		}
	}
	return out
}

// Agents returns the hosts with the role agent.
func (inv *Inventory) Agents() []*Host {
	var out []*Host
	for i := range inv.Hosts {
		if inv.Hosts[i].Has(RoleAgent) {
			out = append(out, &inv.Hosts[i])
		}
	}
	return out
}

// instanceRef splits project/name; project is "" when not given.
func instanceRef(s string) (project, name string, ok bool) {
	if p, n, found := strings.Cut(s, "/"); found {
		return p, n, true
	}
	return "", s, true
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

package instance

import (
	"errors"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
)

// Attachments collects the interfaces instance create (and group create)
// ask for from --network and --security-group in the order they are
// given: each group applies to the network named before it.
type Attachments struct {
	// List holds the interfaces, the primary first.
	List []api.NetworkAttachment
}

// NetworkFlag returns the value of --network.
func (a *Attachments) NetworkFlag() pflag.Value { return networkFlag{a} }

// GroupFlag returns the value of --security-group.
func (a *Attachments) GroupFlag() pflag.Value { return groupFlag{a} }

// networkFlag is the pflag.Value of --network: each use adds an interface.
type networkFlag struct{ a *Attachments }

func (f networkFlag) String() string {
	names := make([]string, len(f.a.List))
	for i, n := range f.a.List {
		names[i] = n.Network
	}
	return strings.Join(names, ",")
}

func (f networkFlag) Set(s string) error {
	if e := api.ValidateName("network", s); e != nil {
		return errors.New(e.Message + " (" + e.Hint + ")")
	}
	f.a.List = append(f.a.List, api.NetworkAttachment{Network: s})
	return nil
}

func (f networkFlag) Type() string { return "NETWORK" }

// groupFlag is the pflag.Value of --security-group: each use adds a group
// to the last --network.
type groupFlag struct{ a *Attachments }

func (f groupFlag) String() string {
	var groups []string
	for _, n := range f.a.List {
		groups = append(groups, n.SecurityGroups...)
	}
	return strings.Join(groups, ",")
}

func (f groupFlag) Set(s string) error {
	if len(f.a.List) == 0 {
		return errors.New("give --network NAME before the security groups of its interface")
	}
	if e := api.ValidateName("securityGroup", s); e != nil {
		return errors.New(e.Message + " (" + e.Hint + ")")
	}
	last := &f.a.List[len(f.a.List)-1]
	last.SecurityGroups = append(last.SecurityGroups, s)
	return nil
}

func (f groupFlag) Type() string { return "SG" }

// Validate checks what the flags asked for as a whole. (Set cannot: shell
// completion parses the flags twice.)
func (a *Attachments) Validate() error {
	seen := map[string]bool{}
	for _, n := range a.List {
		if seen[n.Network] {
			return command.FlagError("network", "network %s is given twice: an instance has one interface per network", n.Network)
		}
		seen[n.Network] = true
		groups := map[string]bool{}
		for _, g := range n.SecurityGroups {
			if groups[g] {
				return command.FlagError("security-group", "security group %s is given twice for network %s", g, n.Network)
			}
			groups[g] = true
		}
	}
	return nil
}

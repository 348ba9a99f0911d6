package cli

import (
	"errors"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// attachments collects the interfaces instance create asks for from
// --network and --security-group in the order they are given: each group
// applies to the network named before it.
type attachments struct {
	list []api.NetworkAttachment
}

// networkFlag is the pflag.Value of --network: each use adds an interface.
type networkFlag struct{ a *attachments }

func (f networkFlag) String() string {
	names := make([]string, len(f.a.list))
	for i, n := range f.a.list {
		names[i] = n.Network
	}
	return strings.Join(names, ",")
}

func (f networkFlag) Set(s string) error {
	if e := api.ValidateName("network", s); e != nil {
		return errors.New(e.Message + " (" + e.Hint + ")")
	}
	f.a.list = append(f.a.list, api.NetworkAttachment{Network: s})
	return nil
}

func (f networkFlag) Type() string { return "NETWORK" }

// groupFlag is the pflag.Value of --security-group: each use adds a group
// to the last --network.
type groupFlag struct{ a *attachments }

func (f groupFlag) String() string {
	var groups []string
	for _, n := range f.a.list {
		groups = append(groups, n.SecurityGroups...)
	}
	return strings.Join(groups, ",")
}

func (f groupFlag) Set(s string) error {
	if len(f.a.list) == 0 {
		return errors.New("give --network NAME before the security groups of its interface")
	}
	if e := api.ValidateName("securityGroup", s); e != nil {
		return errors.New(e.Message + " (" + e.Hint + ")")
	}
	last := &f.a.list[len(f.a.list)-1]
	last.SecurityGroups = append(last.SecurityGroups, s)
	return nil
}

func (f groupFlag) Type() string { return "SG" }

// validate checks what the flags asked for as a whole. (Set cannot: shell
// completion parses the flags twice.)
func (a *attachments) validate() error {
	seen := map[string]bool{}
	for _, n := range a.list {
		if seen[n.Network] {
			return flagError("network", "network %s is given twice: an instance has one interface per network", n.Network)
		}
		seen[n.Network] = true
		groups := map[string]bool{}
		for _, g := range n.SecurityGroups {
			if groups[g] {
				return flagError("security-group", "security group %s is given twice for network %s", g, n.Network)
			}
			groups[g] = true
		}
	}
	return nil
}

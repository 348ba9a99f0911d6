package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxInterfaces bounds the networks of one instance.
const maxInterfaces = 8

// maxGroupsPerInterface bounds the security groups of one interface.
const maxGroupsPerInterface = 16

// validateAttachments defaults an instance's networks (the project's
// default network with the default group; an attachment without groups
// gets default) and checks that every network and group exists. An
// address asked for is checked against its network when it is claimed.
func (a *Admitter) validateAttachments(ctx context.Context, in *api.Instance) error {
	spec, project := &in.Spec, in.Metadata.Project
	if len(spec.Networks) == 0 {
		spec.Networks = []api.NetworkAttachment{{Network: DefaultNetworkName}}
	}
	if len(spec.Networks) > maxInterfaces {
		return api.Invalid("spec.networks", fmt.Sprintf("use at most %d networks", maxInterfaces), "%d networks given", len(spec.Networks))
	}
	for i := range spec.Networks {
		att := &spec.Networks[i]
		field := fmt.Sprintf("spec.networks[%d]", i)
		if e := api.ValidateName(field+".network", att.Network); e != nil {
			return e
		}
		if att.IP != "" {
			if _, err := ipam.ParseAddr4(field+".ip", "give an IPv4 address of the network, or leave it out for a free one", att.IP); err != nil {
				return err
			}
		}
		if slices.ContainsFunc(spec.Networks[:i], func(o api.NetworkAttachment) bool { return o.Network == att.Network }) {
			return api.Invalid(field+".network", "attach each network once", "network %q is given twice", att.Network)
		}
		err := a.st.Get(ctx, api.NetworkKind, project, att.Network, &api.Network{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(field+".network", "create the network first, or list them with GET /v1/projects/"+project+"/networks",
				"network %q does not exist", att.Network)
		}
		if err != nil {
			return fmt.Errorf("get network: %w", err)
		}
		if len(att.SecurityGroups) == 0 {
			att.SecurityGroups = []string{DefaultGroupName}
		}
		if len(att.SecurityGroups) > maxGroupsPerInterface {
			return api.Invalid(field+".securityGroups", fmt.Sprintf("use at most %d groups", maxGroupsPerInterface), "%d groups given", len(att.SecurityGroups))
		}
		for j, g := range att.SecurityGroups {
			gfield := fmt.Sprintf("%s.securityGroups[%d]", field, j)
			if e := api.ValidateName(gfield, g); e != nil {
				return e
			}
			if slices.Contains(att.SecurityGroups[:j], g) {
				return api.Invalid(gfield, "name each group once", "security group %q is given twice", g)
			}
			err := a.st.Get(ctx, api.SecurityGroupKind, project, g, &api.SecurityGroup{})
			if errors.Is(err, store.ErrNotFound) {
				return api.Invalid(gfield, "create the security group first", "security group %q does not exist", g)
			}
			if err != nil {
				return fmt.Errorf("get security group: %w", err)
			}
		}
	}
	return nil
}

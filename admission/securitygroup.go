package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// MaxRules bounds the rules of one security group.
const MaxRules = 100

// ruleID names a rule by what it allows: the first 8 hex digits of the
// SHA-256 of its canonical form, so the same rule always has the same ID.
func ruleID(r api.SecurityGroupRule) string {
	canon := fmt.Sprintf("%s|%s|%d|%d|%s|%s", r.Direction, r.Protocol, r.PortMin, r.PortMax, r.CIDR, r.SourceGroup)
	sum := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(sum[:])[:8]
}

// ValidateRule admits one rule of security group group in project, with
// its defaults (portMax = portMin) and its ID; errors name field. A
// source group other than group itself must exist.
func (a *Admitter) ValidateRule(ctx context.Context, field, project, group string, r *api.SecurityGroupRule) error {
	if err := CheckRule(field, r); err != nil {
		return err
	}
	if r.SourceGroup != "" && r.SourceGroup != group {
		err := a.st.Get(ctx, api.SecurityGroupKind, project, r.SourceGroup, &api.SecurityGroup{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(field+".sourceGroup", "name a security group of this project", "security group %q does not exist", r.SourceGroup)
		}
		if err != nil {
			return fmt.Errorf("get security group: %w", err)
		}
	}
	return nil
}

// CheckRule makes the checks of ValidateRule that need no store (all but
// the existence of the source group) and sets the rule's defaults
// (portMax = portMin) and ID; errors name field.
func CheckRule(field string, r *api.SecurityGroupRule) error {
	switch r.Direction {
	case "ingress", "egress":
	default:
		return api.Invalid(field+".direction", "use ingress or egress", "direction %q is not valid", truncate(r.Direction, 40))
	}
	switch r.Protocol {
	case "tcp", "udp":
		if r.PortMax == 0 {
			r.PortMax = r.PortMin
		}
		if r.PortMin < 1 || r.PortMin > 65535 {
			return api.Invalid(field+".portMin", "use a port from 1 to 65535", "port %d is out of range", r.PortMin)
		}
		if r.PortMax < r.PortMin || r.PortMax > 65535 {
			return api.Invalid(field+".portMax", fmt.Sprintf("use a port from %d to 65535, or leave it out for one port", r.PortMin), "port %d is out of range", r.PortMax)
		}
	case "icmp", "all":
		if r.PortMin != 0 || r.PortMax != 0 {
			return api.Invalid(field+".portMin", "leave the ports out: only tcp and udp have ports", "%s has no ports", r.Protocol)
		}
	default:
		return api.Invalid(field+".protocol", "use tcp, udp, icmp or all", "protocol %q is not valid", truncate(r.Protocol, 40))
	}
	switch {
	case r.CIDR != "" && r.SourceGroup != "":
		return api.Invalid(field+".sourceGroup", "give either cidr or sourceGroup", "both cidr and sourceGroup are set")
	case r.CIDR != "":
		p, err := ipam.ParsePrefix4(field+".cidr", r.CIDR, 0, 32)
		if err != nil {
			return err
		}
		r.CIDR = p.String()
	case r.SourceGroup != "":
		if e := api.ValidateName(field+".sourceGroup", r.SourceGroup); e != nil {
			return e
		}
	default:
		return api.Invalid(field+".cidr", "give cidr (such as 0.0.0.0/0) or sourceGroup", "the rule names no remote side")
	}
	r.ID = ruleID(*r)
	return nil
}

// ValidateSecurityGroup admits a security group: its description and
// rules, with rule IDs set and duplicate rules refused.
func (a *Admitter) ValidateSecurityGroup(ctx context.Context, g *api.SecurityGroup) error {
	if err := ValidateDescription("spec.description", g.Spec.Description); err != nil {
		return err
	}
	if len(g.Spec.Rules) > MaxRules {
		return api.Invalid("spec.rules", fmt.Sprintf("use at most %d rules", MaxRules), "%d rules given", len(g.Spec.Rules))
	}
	for i := range g.Spec.Rules {
		r := &g.Spec.Rules[i]
		field := fmt.Sprintf("spec.rules[%d]", i)
		if err := a.ValidateRule(ctx, field, g.Metadata.Project, g.Metadata.Name, r); err != nil {
			return err
		}
		if j := slices.IndexFunc(g.Spec.Rules[:i], func(o api.SecurityGroupRule) bool { return o.ID == r.ID }); j >= 0 {
			return api.Invalid(field, "remove the duplicate", "rule duplicates spec.rules[%d] (id %s)", j, r.ID)
		}
	}
	return nil
}

// CheckSecurityGroupSpec makes the checks of ValidateSecurityGroup that
// need no store (all but the existence of rules' source groups) on a copy
// of spec.
func CheckSecurityGroupSpec(spec api.SecurityGroupSpec) error {
	if err := ValidateDescription("spec.description", spec.Description); err != nil {
		return err
	}
	if len(spec.Rules) > MaxRules {
		return api.Invalid("spec.rules", fmt.Sprintf("use at most %d rules", MaxRules), "%d rules given", len(spec.Rules))
	}
	rules := slices.Clone(spec.Rules)
	for i := range rules {
		r := &rules[i]
		field := fmt.Sprintf("spec.rules[%d]", i)
		if err := CheckRule(field, r); err != nil {
			return err
		}
		if j := slices.IndexFunc(rules[:i], func(o api.SecurityGroupRule) bool { return o.ID == r.ID }); j >= 0 {
			return api.Invalid(field, "remove the duplicate", "rule duplicates spec.rules[%d] (id %s)", j, r.ID)
		}
	}
	return nil
}

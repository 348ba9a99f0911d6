package ec2

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Authorize and Revoke Ingress and Egress: IP permissions to rules
// (securitygroups.go says how), added or removed in one update of the
// group, retried on a concurrent change. Revoke matches rules exactly.

// maxRuleRetries bounds the read-modify-write loop.
const maxRuleRetries = 8

// parsePermissions reads IpPermissions.N (and the old top-level form)
// into rules of direction dir, normalised by admission.CheckRule.
func (c *Call) parsePermissions(dir string) ([]api.SecurityGroupRule, error) {
	p := c.Params
	perms := p.Structs("IpPermissions")
	if p.Has("IpProtocol") || p.Has("CidrIp") || p.Has("SourceSecurityGroupName") {
		legacy := Params{"IpProtocol": p.String("IpProtocol"), "FromPort": p.String("FromPort"), "ToPort": p.String("ToPort")}
		if v := p.String("CidrIp"); v != "" {
			legacy["IpRanges.1.CidrIp"] = v
		}
		if v := p.String("SourceSecurityGroupName"); v != "" {
			legacy["Groups.1.GroupName"] = v
		}
		if !p.Has("FromPort") {
			delete(legacy, "FromPort")
		}
		if !p.Has("ToPort") {
			delete(legacy, "ToPort")
		}
		perms = append(perms, legacy)
	}
	v := c.view()
	var rules []api.SecurityGroupRule
	for i, perm := range perms {
		field := fmt.Sprintf("IpPermissions.%d", i+1)
		for _, k := range []string{"Ipv6Ranges", "PrefixListIds"} {
			if len(perm.Structs(k)) > 0 {
				return nil, invalidValue("%s.%s: IPv6 ranges and prefix lists are not supported", field, k)
			}
		}
		base := api.SecurityGroupRule{Direction: dir}
		proto := perm.String("IpProtocol")
		switch proto {
		case "-1", "all":
			base.Protocol = "all"
		case "tcp", "6":
			base.Protocol = "tcp"
		case "udp", "17":
			base.Protocol = "udp"
		case "icmp", "1":
			base.Protocol = "icmp"
		case "":
			return nil, missing(field + ".IpProtocol")
		default:
			return nil, invalidValue("Invalid value '%s' for IP protocol. Unknown protocol.", clip(proto))
		}
		from, err := portParam(perm, "FromPort")
		if err != nil {
			return nil, err
		}
		to, err := portParam(perm, "ToPort")
		if err != nil {
			return nil, err
		}
		switch base.Protocol {
		case "tcp", "udp":
			if from == nil || to == nil {
				return nil, Errorf(CodeInvalidParameterValue, "%s: FromPort and ToPort are required for %s", field, base.Protocol)
			}
			if *from == 0 {
				*from = 1
			}
			base.PortMin, base.PortMax = *from, *to
		case "icmp":
			if from != nil && *from != -1 || to != nil && *to != -1 {
				return nil, invalidValue("%s: only all ICMP types (FromPort and ToPort -1) are supported", field)
			}
		}
		var remotes []api.SecurityGroupRule
		for _, r := range perm.Structs("IpRanges") {
			if r.String("Description") != "" {
				return nil, invalidValue("%s: rule descriptions are not supported", field)
			}
			rule := base
			rule.CIDR = r.String("CidrIp")
			if rule.CIDR == "" {
				return nil, missing(field + ".IpRanges.N.CidrIp")
			}
			remotes = append(remotes, rule)
		}
		for _, g := range perm.Structs("Groups") {
			if g.String("Description") != "" {
				return nil, invalidValue("%s: rule descriptions are not supported", field)
			}
			if u := g.String("UserId"); u != "" && u != c.Project {
				return nil, invalidValue("%s: groups of another account (%s) cannot be named", field, clip(u))
			}
			var sg *api.SecurityGroup
			var err error
			if id := g.String("GroupId"); id != "" {
				sg, err = v.groupByID(id)
			} else {
				sg, err = v.groupByName(g.String("GroupName"))
			}
			if err != nil {
				return nil, err
			}
			rule := base
			rule.SourceGroup = sg.Metadata.Name
			remotes = append(remotes, rule)
		}
		if len(remotes) == 0 {
			return nil, invalidValue("%s names no IP range and no group", field)
		}
		for _, r := range remotes {
			if err := admission.CheckRule(field, &r); err != nil {
				var ae *api.Error
				if errors.As(err, &ae) {
					return nil, invalidValue("%s: %s", field, ae.Message)
				}
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

func portParam(p Params, name string) (*int, error) {
	s, ok := p[name]
	if !ok || s == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > 65535 {
		return nil, invalidValue("Invalid value '%s' for %s: use -1 or 0 to 65535", clip(s), name)
	}
	return &n, nil
}

// ruleID is a rule's EC2 id (SecurityGroupRuleId).
func ruleID(g *api.SecurityGroup, r api.SecurityGroupRule) string {
	return ID(PrefixRule, g.Metadata.UID+"/"+r.ID)
}

func changeRules(dir string, add bool) func(c *Call) (any, error) {
	return func(c *Call) (any, error) {
		g, err := c.targetGroup()
		if err != nil {
			return nil, err
		}
		rules, err := c.parsePermissions(dir)
		if err != nil {
			return nil, err
		}
		ruleIDs := c.Params.List("SecurityGroupRuleId")
		if len(rules) == 0 && len(ruleIDs) == 0 {
			return nil, missing("IpPermissions")
		}
		if err := c.authorize(auth.VerbUpdate, api.SecurityGroupKind); err != nil {
			return nil, err
		}
		for range maxRuleRetries {
			next := slices.Clone(g.Spec.Rules)
			for _, r := range rules {
				i := slices.IndexFunc(next, func(o api.SecurityGroupRule) bool { return o.ID == r.ID })
				switch {
				case add && i >= 0:
					return nil, Errorf("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists", describeRule(r))
				case add:
					next = append(next, r)
				case i < 0:
					return nil, Errorf("InvalidPermission.NotFound", "The specified rule does not exist in this security group: %s", describeRule(r))
				default:
					next = slices.Delete(next, i, i+1)
				}
			}
			for _, id := range ruleIDs {
				i := slices.IndexFunc(next, func(o api.SecurityGroupRule) bool { return o.Direction == dir && ruleID(g, o) == id })
				if i < 0 {
					return nil, Errorf("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", clip(id))
				}
				next = slices.Delete(next, i, i+1)
			}
			g.Spec.Rules = next
			err := c.update(g)
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Code == api.CodeConflict {
				o, ferr := c.find(api.SecurityGroupKind, PrefixSecurityGroup, idOf(PrefixSecurityGroup, g), groupNotFound(idOf(PrefixSecurityGroup, g)))
				if ferr != nil {
					return nil, ferr
				}
				g = o.(*api.SecurityGroup)
				continue
			}
			if err != nil {
				return nil, fromAPI(err, groupNotFound(idOf(PrefixSecurityGroup, g)))
			}
			return &Return{Return: true}, nil
		}
		return nil, Errorf(CodeIncorrectState, "the security group changes too fast; retry")
	}
}

func describeRule(r api.SecurityGroupRule) string {
	remote := r.CIDR
	if remote == "" {
		remote = "group " + r.SourceGroup
	}
	if r.Protocol == "tcp" || r.Protocol == "udp" {
		return fmt.Sprintf("%s %s %d-%d %s", r.Direction, r.Protocol, r.PortMin, r.PortMax, remote)
	}
	return fmt.Sprintf("%s %s %s", r.Direction, r.Protocol, remote)
}

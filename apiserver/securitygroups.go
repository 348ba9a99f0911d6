package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxRules bounds the rules of one security group.
const maxRules = 100

// ruleID names a rule by what it allows: the first 8 hex digits of the
// SHA-256 of its canonical form, so the same rule always has the same ID.
func ruleID(r api.SecurityGroupRule) string {
	canon := fmt.Sprintf("%s|%s|%d|%d|%s|%s", r.Direction, r.Protocol, r.PortMin, r.PortMax, r.CIDR, r.SourceGroup)
	sum := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(sum[:])[:8]
}

// validateRule checks one rule of group in project, fills defaults
// (portMax = portMin) and sets its ID.
func (s *Server) validateRule(ctx context.Context, field, project, group string, r *api.SecurityGroupRule) error {
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
		p, err := parsePrefix4(field+".cidr", r.CIDR, 0, 32)
		if err != nil {
			return err
		}
		r.CIDR = p.String()
	case r.SourceGroup != "":
		if e := api.ValidateName(field+".sourceGroup", r.SourceGroup); e != nil {
			return e
		}
		if r.SourceGroup != group {
			err := s.store.Get(ctx, api.SecurityGroupKind, project, r.SourceGroup, &api.SecurityGroup{})
			if errors.Is(err, store.ErrNotFound) {
				return api.Invalid(field+".sourceGroup", "name a security group of this project", "security group %q does not exist", r.SourceGroup)
			}
			if err != nil {
				return fmt.Errorf("get security group: %w", err)
			}
		}
	default:
		return api.Invalid(field+".cidr", "give cidr (such as 0.0.0.0/0) or sourceGroup", "the rule names no remote side")
	}
	r.ID = ruleID(*r)
	return nil
}

// validateSecurityGroup checks a group's description and rules, sets rule
// IDs and refuses duplicate rules.
func (s *Server) validateSecurityGroup(ctx context.Context, g *api.SecurityGroup) error {
	if err := validateDescription("spec.description", g.Spec.Description); err != nil {
		return err
	}
	if len(g.Spec.Rules) > maxRules {
		return api.Invalid("spec.rules", fmt.Sprintf("use at most %d rules", maxRules), "%d rules given", len(g.Spec.Rules))
	}
	for i := range g.Spec.Rules {
		r := &g.Spec.Rules[i]
		field := fmt.Sprintf("spec.rules[%d]", i)
		if err := s.validateRule(ctx, field, g.Metadata.Project, g.Metadata.Name, r); err != nil {
			return err
		}
		if j := slices.IndexFunc(g.Spec.Rules[:i], func(o api.SecurityGroupRule) bool { return o.ID == r.ID }); j >= 0 {
			return api.Invalid(field, "remove the duplicate", "rule duplicates spec.rules[%d] (id %s)", j, r.ID)
		}
	}
	return nil
}

// groupUsers returns the instances that use a group and the groups whose
// rules name it as source.
func (s *Server) groupUsers(ctx context.Context, g *api.SecurityGroup) ([]api.Object, error) {
	project, name := g.Metadata.Project, g.Metadata.Name
	insts, _, err := s.store.List(ctx, api.InstanceKind, project, store.ListOptions{Filter: func(o api.Object) bool {
		return slices.ContainsFunc(o.(*api.Instance).Spec.Networks, func(a api.NetworkAttachment) bool {
			return slices.Contains(a.SecurityGroups, name)
		})
	}})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	groups, _, err := s.store.List(ctx, api.SecurityGroupKind, project, store.ListOptions{Filter: func(o api.Object) bool {
		og := o.(*api.SecurityGroup)
		return og.Metadata.Name != name && slices.ContainsFunc(og.Spec.Rules, func(r api.SecurityGroupRule) bool {
			return r.SourceGroup == name
		})
	}})
	if err != nil {
		return nil, fmt.Errorf("list security groups: %w", err)
	}
	templates, err := s.templateUsers(ctx, project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return slices.Contains(a.SecurityGroups, name) })
	})
	if err != nil {
		return nil, err
	}
	return append(append(insts, groups...), templates...), nil
}

// addRule serves POST /v1/projects/{p}/securitygroups/{name}/rules: the
// body is one rule, added to the group, which is answered.
func (s *Server) addRule(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	project, name, err := pathNames(api.SecurityGroupKind, r)
	if err != nil {
		return err
	}
	var rule api.SecurityGroupRule
	if err := decodeJSON(w, r, &rule); err != nil {
		return err
	}
	cur, err := s.getObject(r, api.SecurityGroupKind, project, name)
	if err != nil {
		return err
	}
	if err := authorize(id, objectAttrs(auth.VerbUpdate, cur), "SecurityGroup", name); err != nil {
		return err
	}
	if err := s.validateRule(r.Context(), "rule", project, name, &rule); err != nil {
		return err
	}
	obj, err := s.mutate(r, api.SecurityGroupKind, project, name, func(o api.Object) (bool, error) {
		g := o.(*api.SecurityGroup)
		if slices.ContainsFunc(g.Spec.Rules, func(x api.SecurityGroupRule) bool { return x.ID == rule.ID }) {
			return false, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists,
				Message: fmt.Sprintf("security group %q already has rule %s", name, rule.ID), Hint: "the rule is in place"}
		}
		if len(g.Spec.Rules) >= maxRules {
			return false, api.Invalid("rule", fmt.Sprintf("a group has at most %d rules", maxRules), "security group %q is full", name)
		}
		g.Spec.Rules = append(g.Spec.Rules, rule)
		g.Metadata.Generation++
		return true, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, prepareOut(obj))
	return nil
}

// deleteRule serves DELETE /v1/projects/{p}/securitygroups/{name}/rules/{id}.
func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	project, name, err := pathNames(api.SecurityGroupKind, r)
	if err != nil {
		return err
	}
	ruleID := r.PathValue("id")
	cur, err := s.getObject(r, api.SecurityGroupKind, project, name)
	if err != nil {
		return err
	}
	if err := authorize(id, objectAttrs(auth.VerbUpdate, cur), "SecurityGroup", name); err != nil {
		return err
	}
	obj, err := s.mutate(r, api.SecurityGroupKind, project, name, func(o api.Object) (bool, error) {
		g := o.(*api.SecurityGroup)
		i := slices.IndexFunc(g.Spec.Rules, func(x api.SecurityGroupRule) bool { return x.ID == ruleID })
		if i < 0 {
			return false, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
				Message: fmt.Sprintf("security group %q has no rule %q", name, truncate(ruleID, 20)),
				Hint:    "GET the group to see its rules and their ids"}
		}
		g.Spec.Rules = slices.Delete(g.Spec.Rules, i, i+1)
		g.Metadata.Generation++
		return true, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, prepareOut(obj))
	return nil
}

package apiserver

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

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
	if err := s.adm.ValidateRule(r.Context(), "rule", project, name, &rule); err != nil {
		return err
	}
	obj, err := s.mutate(r, api.SecurityGroupKind, project, name, func(o api.Object) (bool, error) {
		g := o.(*api.SecurityGroup)
		if slices.ContainsFunc(g.Spec.Rules, func(x api.SecurityGroupRule) bool { return x.ID == rule.ID }) {
			return false, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists,
				Message: fmt.Sprintf("security group %q already has rule %s", name, rule.ID), Hint: "the rule is in place"}
		}
		if len(g.Spec.Rules) >= admission.MaxRules {
			return false, api.Invalid("rule", fmt.Sprintf("a group has at most %d rules", admission.MaxRules), "security group %q is full", name)
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

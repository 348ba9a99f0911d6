package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Token lifetimes.
const (
	DefaultJoinTokenTTL = 24 * time.Hour
	maxTokenTTL         = 10 * 365 * 24 * time.Hour
)

func parseTTL(field, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > maxTokenTTL {
		return 0, api.Invalid(field, `use a positive Go duration such as "720h"`, "ttl %q is not valid", truncate(s, 40))
	}
	return d, nil
}

// createToken serves POST /v1/tokens: it grants the role to the user
// (creating the user if needed) and issues a token for the user.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	var req api.TokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if e := api.ValidateName("user", req.User); e != nil {
		return e
	}
	if req.Project != "" {
		if e := api.ValidateName("project", req.Project); e != nil {
			return e
		}
		if !req.Role.Valid() {
			return api.Invalid("role", "use admin, member or viewer", "role %q is not valid", req.Role)
		}
	} else if req.Role != "" {
		return api.Invalid("project", "name the project the role is for", "a role needs a project")
	}
	if err := admission.ValidateDescription("description", req.Description); err != nil {
		return err
	}
	ttl, err := parseTTL("ttl", req.TTL, 0)
	if err != nil {
		return err
	}
	if !id.ClusterAdmin {
		if req.Project == "" {
			return authorize(id, auth.Attributes{Verb: auth.VerbCreate, Resource: api.TokenKind.Plural}, "Token", "")
		}
		if err := authorize(id, auth.Attributes{Verb: auth.VerbGrant, Resource: api.TokenKind.Plural, Project: req.Project}, "Project", req.Project); err != nil {
			return err
		}
	}
	if req.Project != "" {
		if err := s.adm.EnsureProject(r.Context(), req.Project); err != nil {
			return err
		}
	}
	if err := s.grant(r, id, req.User, req.Project, req.Role); err != nil {
		return err
	}
	tok := &api.Token{Spec: api.TokenSpec{User: req.User, Description: req.Description}}
	if ttl > 0 {
		exp := time.Now().Add(ttl).UTC()
		tok.Spec.ExpiresAt = &exp
	}
	wire, err := s.issueToken(r, tok)
	if err != nil {
		return err
	}
	prepareOut(tok)
	tok.Status.Secret = wire
	writeJSON(w, http.StatusCreated, tok)
	return nil
}

// grant gives user the role in project, creating the user if missing. A
// caller who is not a cluster admin may only act on users whose grants lie
// in projects the caller administers.
func (s *Server) grant(r *http.Request, id *auth.Identity, user, project string, role api.Role) error {
	for range maxConflictRetries {
		var u api.User
		err := s.store.Get(r.Context(), api.UserKind, "", user, &u)
		if errors.Is(err, store.ErrNotFound) {
			u = api.User{Metadata: api.ObjectMeta{Name: user}}
			if project != "" {
				u.Spec.Roles = map[string]api.Role{project: role}
			}
			_, err = s.store.Create(r.Context(), &u, store.CreateOptions{})
			if errors.Is(err, store.ErrAlreadyExists) {
				continue
			}
			if err != nil {
				return fmt.Errorf("create user %s: %w", user, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("get user %s: %w", user, err)
		}
		if !id.ClusterAdmin {
			if u.Spec.ClusterAdmin {
				return forbidden("only cluster admins may issue tokens for cluster admins")
			}
			for p := range u.Spec.Roles {
				if !auth.AtLeast(id.Roles[p], api.RoleAdmin) {
					return forbidden(fmt.Sprintf("user %q has roles in projects you do not administer", user))
				}
			}
		}
		if project == "" || u.Spec.Roles[project] == role {
			return nil
		}
		if u.Spec.Roles == nil {
			u.Spec.Roles = map[string]api.Role{}
		}
		u.Spec.Roles[project] = role
		u.Metadata.Generation++
		err = s.store.Update(r.Context(), &u)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update user %s: %w", user, err)
		}
		// Cached identities of the user's tokens keep the old roles for at
		// most the authenticator's cache TTL.
		return nil
	}
	return api.Conflict("user %q changes too fast", user)
}

func forbidden(msg string) error {
	return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: msg,
		Hint: "ask a cluster admin"}
}

// issueToken names tok, stores it with the hash of a new secret and
// returns the secret's wire form.
func (s *Server) issueToken(r *http.Request, tok *api.Token) (string, error) {
	name, secret, wire := auth.NewSecret()
	tok.Metadata = api.ObjectMeta{Name: name}
	tok.Status = api.TokenStatus{SecretHash: auth.Hash(secret)}
	if _, err := s.store.Create(r.Context(), tok, store.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return wire, nil
}

// createJoinToken serves POST /v1/jointokens.
func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	var req api.JoinTokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := authorize(id, auth.Attributes{Verb: auth.VerbCreate, Resource: api.JoinTokenKind.Plural}, "JoinToken", ""); err != nil {
		return err
	}
	ttl, err := parseTTL("ttl", req.TTL, DefaultJoinTokenTTL)
	if err != nil {
		return err
	}
	name, secret, wire := auth.NewSecret()
	jt := &api.JoinToken{
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.JoinTokenSpec{ExpiresAt: time.Now().Add(ttl).UTC()},
		Status:   api.TokenStatus{SecretHash: auth.Hash(secret)},
	}
	if _, err := s.store.Create(r.Context(), jt, store.CreateOptions{}); err != nil {
		return fmt.Errorf("create join token: %w", err)
	}
	prepareOut(jt)
	jt.Status.Secret = wire
	writeJSON(w, http.StatusCreated, jt)
	return nil
}

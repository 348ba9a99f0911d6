package ec2

import (
	"context"
	"errors"
	"net/http"

	"github.com/ouroboros-cloud/ouro/accesskey"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/sigv4"
	"github.com/ouroboros-cloud/ouro/store"
)

// authenticate verifies r's signature and returns the call's caller.
// An access key counts only while its user exists and holds a role in
// the key's project; the identity carries that role alone, so a key of
// project A can do nothing in project B whatever else its user may.
func (h *Handler) authenticate(r *http.Request, body []byte) (*Call, error) {
	var key *api.AccessKey
	v := *h.verifier
	v.Secrets = func(ctx context.Context, id string) (string, error) {
		if !accesskey.ValidID(id) {
			return "", sigv4.ErrUnknownKey
		}
		var k api.AccessKey
		err := h.creds.get(ctx, api.AccessKeyKind, accesskey.Name(id), &k)
		if errors.Is(err, store.ErrNotFound) || err == nil && k.Spec.AccessKeyID != id {
			return "", sigv4.ErrUnknownKey
		}
		if err != nil {
			return "", err
		}
		secret, err := h.cfg.Sealer.Open(id, k.Status.SealedSecret)
		if err != nil {
			return "", err
		}
		key = &k
		return secret, nil
	}
	cred, err := v.Verify(r.Context(), r, body)
	if err != nil {
		return nil, err
	}
	var u api.User
	if err := h.creds.get(r.Context(), api.UserKind, key.Spec.User, &u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, authFailure()
		}
		return nil, err
	}
	id := &auth.Identity{User: u.Metadata.Name, Token: "accesskey:" + key.Metadata.Name}
	role, ok := u.Spec.Roles[key.Spec.Project]
	switch {
	case u.Spec.ClusterAdmin:
		id.Roles = map[string]api.Role{key.Spec.Project: api.RoleAdmin}
	case ok:
		id.Roles = map[string]api.Role{key.Spec.Project: role}
	default:
		return nil, authFailure()
	}
	return &Call{h: h, ID: id, Project: key.Spec.Project, Key: key, Region: cred.Region}, nil
}

func authFailure() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials"}
}

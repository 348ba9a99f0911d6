package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/accesskey"
	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Access keys (api.AccessKey, for the EC2 API) are cluster-scoped
// objects owned by a user: a user makes keys for themselves alone, for a
// project where they hold a role, and lists and deletes their own;
// cluster admins see and delete all. The secret is answered once, by the
// create; etcd holds it only sealed (package accesskey).

// maxAccessKeysPerUser bounds one user's keys.
const maxAccessKeysPerUser = 20

func (s *Server) accessKeyRoutes(mux interface {
	Handle(string, http.Handler)
}) {
	mux.Handle("POST /v1/accesskeys", s.authed(s.createAccessKey))
	mux.Handle("GET /v1/accesskeys", s.authed(s.listAccessKeys))
	mux.Handle("GET /v1/accesskeys/{name}", s.authed(s.getAccessKey))
	mux.Handle("DELETE /v1/accesskeys/{name}", s.authed(s.deleteAccessKey))
}

func (s *Server) createAccessKey(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if id.User == "" || id.IsSystem() {
		return forbidden("only users may make access keys")
	}
	if s.sealer == nil {
		return unavailable(errors.New("this server has no cluster CA to seal access keys with"))
	}
	var req api.AccessKeyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Project == "" {
		req.Project = "default"
	}
	if e := api.ValidateName("project", req.Project); e != nil {
		return e
	}
	if err := admission.ValidateDescription("description", req.Description); err != nil {
		return err
	}
	if _, ok := id.Roles[req.Project]; !ok {
		if !id.ClusterAdmin {
			return api.NotFound("Project", req.Project)
		}
		if _, err := s.readObject(r.Context(), api.ProjectKind, "", req.Project); err != nil {
			return err
		}
	}
	mine, _, err := s.store.List(r.Context(), api.AccessKeyKind, "", store.ListOptions{Filter: ownedBy(id.User)})
	if err != nil {
		return fmt.Errorf("list access keys: %w", err)
	}
	if len(mine) >= maxAccessKeysPerUser {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("user %q has %d access keys, the most allowed", id.User, len(mine)),
			Hint:    "delete one with ouro credentials delete"}
	}
	keyID, secret := accesskey.New()
	k := &api.AccessKey{
		Metadata: api.ObjectMeta{Name: accesskey.Name(keyID)},
		Spec:     api.AccessKeySpec{AccessKeyID: keyID, User: id.User, Project: req.Project, Description: req.Description},
		Status:   api.AccessKeyStatus{SealedSecret: s.sealer.Seal(keyID, secret)},
	}
	if _, err := s.store.Create(r.Context(), k, store.CreateOptions{}); err != nil {
		return fmt.Errorf("create access key: %w", err)
	}
	prepareOut(k)
	k.Status.Secret = secret
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func ownedBy(user string) func(api.Object) bool {
	return func(o api.Object) bool { return o.(*api.AccessKey).Spec.User == user }
}

func (s *Server) listAccessKeys(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	var keep func(api.Object) bool
	if !id.ClusterAdmin {
		if id.User == "" {
			return forbidden("only users have access keys")
		}
		keep = ownedBy(id.User)
	}
	objs, rv, err := s.store.List(r.Context(), api.AccessKeyKind, "", store.ListOptions{Filter: keep})
	if err != nil {
		return fmt.Errorf("list access keys: %w", err)
	}
	list := api.List[api.Object]{Kind: "AccessKeyList", Metadata: rv, Items: make([]api.Object, 0, len(objs))}
	for _, o := range objs {
		list.Items = append(list.Items, prepareOut(o))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// ownAccessKey reads the named key if id may see it.
func (s *Server) ownAccessKey(r *http.Request, id *auth.Identity) (*api.AccessKey, error) {
	name := r.PathValue("name")
	o, err := s.readObject(r.Context(), api.AccessKeyKind, "", name)
	if err != nil {
		return nil, err
	}
	k := o.(*api.AccessKey)
	if !id.ClusterAdmin && (id.User == "" || k.Spec.User != id.User) {
		return nil, api.NotFound("AccessKey", name)
	}
	return k, nil
}

func (s *Server) getAccessKey(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	k, err := s.ownAccessKey(r, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, prepareOut(k))
	return nil
}

func (s *Server) deleteAccessKey(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	k, err := s.ownAccessKey(r, id)
	if err != nil {
		return err
	}
	if err := s.store.Delete(r.Context(), api.AccessKeyKind, "", k.Metadata.Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete access key %s: %w", k.Metadata.Name, err)
	}
	s.credentialsChanged(k, true)
	writeJSON(w, http.StatusOK, prepareOut(k))
	return nil
}

// credentialsChanged tells the EC2 handler, which keeps access keys and
// users in memory, that obj was written (deleted, when gone) here, so
// that its next request reads the store until its cache shows the change.
func (s *Server) credentialsChanged(obj api.Object, gone bool) {
	if s.ec2 != nil {
		s.ec2.Changed(obj, gone)
	}
}

package apiserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// CreateInstance creates an instance on behalf of a controller (the group
// controller's members) exactly as POST /v1/projects/{p}/instances would:
// the same validation and defaulting, the same address allocation, and
// the same idempotency. It writes with st, which for a controller is the
// store guarded by its leadership, so a deposed leader cannot create.
//
// in carries metadata (name, project, labels) and spec; on success it
// holds the stored instance. existed is true when idempotencyKey was used
// before for the same request and in is the instance made then.
func (s *Server) CreateInstance(ctx context.Context, st store.Interface, in *api.Instance, idempotencyKey string) (existed bool, err error) {
	m := &in.Metadata
	if e := api.ValidateName("metadata.name", m.Name); e != nil {
		return false, e
	}
	if e := api.ValidateName("metadata.project", m.Project); e != nil {
		return false, e
	}
	if e := api.ValidateLabels("metadata.labels", m.Labels); e != nil {
		return false, e
	}
	*m = api.ObjectMeta{Name: m.Name, Project: m.Project, Labels: m.Labels}
	in.Kind = api.InstanceKind.Name
	in.Status = api.InstanceStatus{}
	opts := store.CreateOptions{}
	if idempotencyKey != "" {
		opts.IdempotencyKey, opts.RequestHash = idempotencyKey, requestHash(api.InstanceKind, m.Project, in)
	}
	// The instance validators read through a request only for its
	// context.
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/projects/"+m.Project+"/instances", nil)
	if err != nil {
		return false, fmt.Errorf("create instance %s: %w", m.Name, err)
	}
	if err := s.ensureProject(r, m.Project); err != nil {
		return false, err
	}
	if err := s.validateInstanceCreate(r, in); err != nil {
		return false, err
	}
	existed, err = s.createInstance(ctx, st, in, opts)
	if err != nil {
		return false, fmt.Errorf("create instance %s: %w", m.Name, err)
	}
	return existed, nil
}

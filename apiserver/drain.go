package apiserver

import (
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// drain serves POST /v1/hosts/{name}/drain (cluster admins): it cordons
// the host, then deletes every member of an instance group on it, as
// `ouro instance delete` would (the agent stops it gracefully). Each group
// replaces its deleted members at once, on other hosts, as it replaces the
// members of a lost host. Instances in no group stay: nothing would bring
// them back. Draining again deletes what has come since.
func (s *Server) drain(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	_, name, err := pathNames(api.HostKind, r)
	if err != nil {
		return err
	}
	if err := authorize(id, auth.Attributes{Verb: auth.VerbUpdate, Resource: api.HostKind.Plural, Name: name}, "Host", name); err != nil {
		return err
	}
	host, err := s.mutate(r, api.HostKind, "", name, func(o api.Object) (bool, error) {
		h := o.(*api.Host)
		if h.Spec.Unschedulable {
			return false, nil
		}
		h.Spec.Unschedulable = true
		h.Metadata.Generation++
		return true, nil
	})
	if err != nil {
		return err
	}
	objs, _, err := s.store.List(r.Context(), api.InstanceKind, "", store.ListOptions{
		Filter: func(o api.Object) bool { return o.(*api.Instance).Status.Host == name }})
	if err != nil {
		return fmt.Errorf("list instances on %s: %w", name, err)
	}
	out := api.DrainResponse{Host: name, Deleted: []string{}, Kept: []string{}}
	for _, o := range objs {
		in := o.(*api.Instance)
		key := in.Metadata.Project + "/" + in.Metadata.Name
		if in.Metadata.Labels[api.LabelGroup] == "" {
			out.Kept = append(out.Kept, key)
			continue
		}
		if in.Metadata.DeletionTimestamp == nil {
			_, _, err := deleteInstance(s, r.Context(), s.store, in, "")
			if api.IsNotFound(err) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("drain %s: %w", name, err)
			}
		}
		out.Deleted = append(out.Deleted, key)
	}
	s.events.Event(r.Context(), host, api.EventNormal, "Drained",
		"%s drained the host: cordoned, %d group member(s) deleted for their groups to replace, %d other instance(s) kept",
		id, len(out.Deleted), len(out.Kept))
	writeJSON(w, http.StatusOK, out)
	return nil
}

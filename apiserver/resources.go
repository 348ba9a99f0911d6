package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// EventTTL is how long events are kept.
const EventTTL = time.Hour

// objectAttrs describes a request on an existing object for Authorize.
func objectAttrs(verb auth.Verb, obj api.Object) auth.Attributes {
	m := obj.Meta()
	a := auth.Attributes{Verb: verb, Resource: obj.GetKind().Plural, Project: m.Project, Name: m.Name}
	switch o := obj.(type) {
	case *api.Instance:
		a.Host = o.Status.Host
	case *api.Image:
		a.Public = o.Spec.Public
	case *api.HostNetwork:
		a.Host = m.Name
	}
	return a
}

// canSee reports whether id may read obj; lists and watches keep only
// such objects.
func canSee(id *auth.Identity, obj api.Object) bool {
	return auth.Authorize(id, objectAttrs(auth.VerbGet, obj)) == auth.Allow
}

// pathNames returns the validated {project} and {name} of the request.
func pathNames(k *api.Kind, r *http.Request) (project, name string, err error) {
	project, name = r.PathValue("project"), r.PathValue("name")
	if strings.Contains(r.Pattern, "{project}") {
		if e := api.ValidateName("project", project); e != nil {
			return "", "", e
		}
	}
	// Routes with {name} match only non-empty segments.
	if name != "" {
		if e := api.ValidateName("name", name); e != nil {
			return "", "", e
		}
	}
	return project, name, nil
}

// getObject reads one object, answering NotFound in the API's words.
func (s *Server) getObject(r *http.Request, k *api.Kind, project, name string) (api.Object, error) {
	obj := k.New()
	if err := s.store.Get(r.Context(), k, project, name, obj); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound(k.Name, name)
		}
		return nil, fmt.Errorf("get %s %s/%s: %w", k, project, name, err)
	}
	return obj, nil
}

func (s *Server) get(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, name, err := pathNames(k, r)
		if err != nil {
			return err
		}
		obj, err := s.getObject(r, k, project, name)
		if err != nil {
			return err
		}
		if err := authorize(id, objectAttrs(auth.VerbGet, obj), k.Name, name); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, prepareOut(obj))
		return nil
	}
}

func (s *Server) listOrWatch(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, _, err := pathNames(k, r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		sel, err := api.ParseSelector(q.Get("labelSelector"))
		if err != nil {
			return err
		}
		host := q.Get("host")
		if host != "" {
			if k != api.InstanceKind && k != api.HostNetworkKind {
				return api.Invalid("host", "only instances and host networks can be filtered by host", "unsupported query parameter")
			}
			if e := api.ValidateName("host", host); e != nil {
				return e
			}
		}
		watch := q.Get("watch")
		if watch != "" && watch != "true" && watch != "false" {
			return api.Invalid("watch", "use watch=true", "%q is not a boolean", watch)
		}
		verb := auth.VerbList
		if watch == "true" {
			verb = auth.VerbWatch
		}
		view, err := listView(k, q.Get("view"), verb)
		if err != nil {
			return err
		}
		if err := authorize(id, auth.Attributes{Verb: verb, Resource: k.Plural, Project: project, Host: host}, k.Name, ""); err != nil {
			return err
		}
		if project != "" {
			if err := s.adm.EnsureProject(r.Context(), project); err != nil {
				return err
			}
		}
		match := func(o api.Object) bool {
			if host != "" {
				switch o := o.(type) {
				case *api.Instance:
					if o.Status.Host != host {
						return false
					}
				case *api.HostNetwork:
					if o.Metadata.Name != host {
						return false
					}
				default:
					return false
				}
			}
			return canSee(id, o)
		}
		if verb == auth.VerbWatch {
			return s.watch(w, r, k, project, host, sel, match)
		}
		if s.watches.CanList() && q.Get("limit") == "" && q.Get("continue") == "" {
			return s.watches.List(r.Context(), w, k, project, sel, match, view)
		}
		opts := store.ListOptions{Selector: sel, Filter: match, Continue: q.Get("continue")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				return api.Invalid("limit", "use a whole number of at least 0", "limit %q is not valid", l)
			}
			opts.Limit = n
		}
		objs, meta, err := s.store.List(r.Context(), k, project, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", k.Plural, err)
		}
		return s.watches.WriteList(w, k, meta, objs, view)
	}
}

// listView returns the view ?view=name asks of a list of kind k (nil for
// none). Views are for lists: a watch sends whole objects.
func listView(k *api.Kind, name string, verb auth.Verb) (*api.View, error) {
	if name == "" {
		return nil, nil
	}
	if verb == auth.VerbWatch {
		return nil, api.Invalid("view", "leave it out: a watch sends whole objects; only lists have views", "view %q on a watch", truncate(name, 40))
	}
	v := k.ViewOf(name)
	if v == nil {
		hint := k.Plural + " have no views: leave it out"
		if names := k.ViewNames(); len(names) > 0 {
			hint = "use one of: " + strings.Join(names, ", ")
		}
		return nil, api.Invalid("view", hint, "%s have no view %q", k.Plural, truncate(name, 40))
	}
	return v, nil
}

func (s *Server) create(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, _, err := pathNames(k, r)
		if err != nil {
			return err
		}
		obj := k.New()
		if err := decodeJSON(w, r, obj); err != nil {
			return err
		}
		if err := checkPathMeta(k, obj.Meta(), project, ""); err != nil {
			return err
		}
		existed, err := s.createObject(r.Context(), s.store, id, obj, r.Header.Get("Idempotency-Key"))
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if existed {
			status = http.StatusOK
		}
		writeJSON(w, status, prepareOut(obj))
		return nil
	}
}

// createObject authorizes, admits and stores a new object for id, writing
// with st: the one path of every create, from the API or from a
// controller acting for a user. obj carries its name, project (the
// path's), labels and spec; on success it holds the stored object.
// existed is true when key was used before for the same request.
func (s *Server) createObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object, key string) (existed bool, err error) {
	k := obj.GetKind()
	m := obj.Meta()
	project := m.Project
	hash := admission.RequestHash(k, project, obj)
	if err := authorize(id, auth.Attributes{Verb: auth.VerbCreate, Resource: k.Plural, Project: project}, k.Name, ""); err != nil {
		return false, err
	}
	if k == api.EventKind {
		m.Name = eventName()
	} else if e := api.ValidateName("metadata.name", m.Name); e != nil {
		return false, e
	}
	if e := api.ValidateMetaMaps(m); e != nil {
		return false, e
	}
	if in, ok := obj.(*api.Instance); ok {
		// Admission reads the project, flavor, image, networks and
		// groups: one read of all of them.
		ctx = s.adm.PrefetchInstanceReads(ctx, in)
	}
	if k.Namespaced {
		if err := s.adm.EnsureProject(ctx, project); err != nil {
			return false, err
		}
	}
	if len(m.Finalizers) > 0 && !id.IsSystem() {
		return false, api.Invalid("metadata.finalizers", "leave it out: only the server's controllers set finalizers", "finalizers cannot be set")
	}
	*m = api.ObjectMeta{Name: m.Name, Project: project, Labels: m.Labels, Annotations: m.Annotations, Finalizers: m.Finalizers}
	clearStatus(obj)
	opts := store.CreateOptions{}
	if key != "" {
		if len(key) > 128 || !printable(key) {
			return false, api.Invalid("Idempotency-Key", "use at most 128 printable ASCII characters, such as a UUID", "the idempotency key is not valid")
		}
		opts.IdempotencyKey, opts.RequestHash = key, hash
	}
	if k == api.EventKind {
		opts.TTL = EventTTL
	}
	if k == api.ImageKind {
		// Hold off the blob sweep from checking the blobs to storing the image.
		defer s.blobs.Hold()()
	}
	v := hooks[k]
	if v.create != nil {
		if err := v.create(s, ctx, id, obj); err != nil {
			return false, err
		}
	}
	if v.commit != nil {
		existed, err = v.commit(s, ctx, st, obj, opts)
	} else {
		existed, err = st.Create(ctx, obj, opts)
	}
	if err != nil {
		return false, fmt.Errorf("create %s %s: %w", k, m.Name, err)
	}
	if v.created != nil {
		if err := v.created(s, ctx, obj); err != nil {
			return false, err
		}
	}
	return existed, nil
}

// checkPathMeta makes the body's metadata agree with the path: empty name
// and project are filled in, different ones refused.
func checkPathMeta(k *api.Kind, m *api.ObjectMeta, project, name string) error {
	if name != "" {
		if m.Name != "" && m.Name != name {
			return api.Invalid("metadata.name", "leave it out or use the name in the URL", "name %q does not match the URL's %q", m.Name, name)
		}
		m.Name = name
	}
	if !k.Namespaced {
		if m.Project != "" {
			return api.Invalid("metadata.project", "leave it out: "+k.Plural+" belong to no project", "project set on a cluster-scoped kind")
		}
		return nil
	}
	if m.Project != "" && m.Project != project {
		return api.Invalid("metadata.project", "leave it out or use the project in the URL", "project %q does not match the URL's %q", m.Project, project)
	}
	m.Project = project
	return nil
}

// readForUpdate is the common start of a PUT: it decodes the body, checks
// it names the object of the URL and carries a resourceVersion, reads the
// stored object, authorizes verb on it and refuses a stale version.
func (s *Server) readForUpdate(w http.ResponseWriter, r *http.Request, id *auth.Identity, k *api.Kind, verb auth.Verb) (in, cur api.Object, err error) {
	project, name, err := pathNames(k, r)
	if err != nil {
		return nil, nil, err
	}
	in = k.New()
	if err := decodeJSON(w, r, in); err != nil {
		return nil, nil, err
	}
	m := in.Meta()
	if err := checkPathMeta(k, m, project, name); err != nil {
		return nil, nil, err
	}
	if m.ResourceVersion == "" {
		return nil, nil, api.Invalid("metadata.resourceVersion", "send the resourceVersion of the object you read", "resourceVersion is required")
	}
	cur, err = s.getObject(r, k, project, name)
	if err != nil {
		return nil, nil, err
	}
	if err := authorize(id, objectAttrs(verb, cur), k.Name, name); err != nil {
		return nil, nil, err
	}
	if rv := cur.Meta().ResourceVersion; rv != m.ResourceVersion {
		return nil, nil, api.Conflict("%s %q is at resourceVersion %s, not %s", k, name, rv, m.ResourceVersion)
	}
	return in, cur, nil
}

func (s *Server) update(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		obj, cur, err := s.readForUpdate(w, r, id, k, auth.VerbUpdate)
		if err != nil {
			return err
		}
		if err := s.updateObject(r.Context(), s.store, id, cur, obj); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, prepareOut(obj))
		return nil
	}
}

// updateObject admits the change of cur, read from the store and on which
// id was authorized, to obj and stores it with st: the one path of every
// update. Server-owned metadata and the status are kept from cur.
func (s *Server) updateObject(ctx context.Context, st store.Interface, id *auth.Identity, cur, obj api.Object) error {
	k := cur.GetKind()
	m, cm, name := obj.Meta(), cur.Meta(), cur.Meta().Name
	if e := api.ValidateMetaMaps(m); e != nil {
		return e
	}
	m.UID, m.CreationTimestamp, m.DeletionTimestamp, m.Generation = cm.UID, cm.CreationTimestamp, cm.DeletionTimestamp, cm.Generation
	if !id.IsSystem() {
		// Finalizers are the controllers' to set and remove.
		m.Finalizers = cm.Finalizers
	}
	copyStatus(cur, obj)
	v := hooks[k]
	if v.update != nil {
		if err := v.update(s, ctx, id, cur, obj); err != nil {
			return err
		}
	}
	if !specEqual(cur, obj) {
		m.Generation++
	}
	var err error
	if v.commitUpdate != nil {
		err = v.commitUpdate(s, ctx, st, cur, obj)
	} else {
		err = st.Update(ctx, obj)
	}
	if err != nil {
		return fmt.Errorf("update %s %s: %w", k, name, err)
	}
	s.credentialsChanged(obj, false)
	return nil
}

func (s *Server) updateStatus(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		in, cur, err := s.readForUpdate(w, r, id, k, auth.VerbUpdateStatus)
		if err != nil {
			return err
		}
		name := cur.Meta().Name
		next := cloneObject(cur)
		copyStatus(in, next)
		if v := hooks[k]; v.status != nil {
			if err := v.status(id, cur, next); err != nil {
				return err
			}
		}
		if err := s.store.Update(r.Context(), next); err != nil {
			return fmt.Errorf("update status of %s %s: %w", k, name, err)
		}
		writeJSON(w, http.StatusOK, prepareOut(next))
		return nil
	}
}

func (s *Server) delete(k *api.Kind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, name, err := pathNames(k, r)
		if err != nil {
			return err
		}
		cur, err := s.getObject(r, k, project, name)
		if err != nil {
			return err
		}
		status, out, err := s.deleteObject(r.Context(), s.store, id, cur, r.URL.Query().Get("resourceVersion"))
		if err != nil {
			return err
		}
		writeJSON(w, status, prepareOut(out))
		return nil
	}
}

// deleteObject authorizes and deletes cur, read from the store, for id
// with st, at resourceVersion rv when given: the one path of every
// delete. It returns the status to answer (200 deleted, 202 marked for
// deletion) and the object to answer with.
func (s *Server) deleteObject(ctx context.Context, st store.Interface, id *auth.Identity, cur api.Object, rv string) (int, api.Object, error) {
	k, m := cur.GetKind(), cur.Meta()
	if err := authorize(id, objectAttrs(auth.VerbDelete, cur), k.Name, m.Name); err != nil {
		return 0, nil, err
	}
	if rv != "" && rv != m.ResourceVersion {
		return 0, nil, api.Conflict("%s %q is at resourceVersion %s, not %s", k, m.Name, m.ResourceVersion, rv)
	}
	v := hooks[k]
	if v.remove != nil {
		return v.remove(s, ctx, st, cur, rv)
	}
	if v.beforeDelete != nil {
		if err := v.beforeDelete(s, ctx, st, cur); err != nil {
			return 0, nil, err
		}
	}
	if err := st.Delete(ctx, k, m.Project, m.Name, rv); err != nil {
		return 0, nil, fmt.Errorf("delete %s %s: %w", k, m.Name, err)
	}
	if v.deleted != nil {
		v.deleted(s, cur)
	}
	s.credentialsChanged(cur, true)
	return http.StatusOK, cur, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

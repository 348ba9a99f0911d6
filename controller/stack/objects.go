package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/stack"
	"github.com/ouroboros-cloud/ouro/store"
)

// get reads the object of kind k named name in the stack's project (or
// the cluster's), nil when there is none.
func (p *pass) get(ctx context.Context, k *api.Kind, name string) (api.Object, error) {
	project := p.s.Metadata.Project
	if !k.Namespaced {
		project = ""
	}
	obj := k.New()
	if err := p.c.o.Store.Get(ctx, k, project, name, obj); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("get %s %s: %w", k, name, err)
	}
	return obj, nil
}

// lookup returns the reference resolver of stack.Resolve: the value of a
// field of an object of the project, or false while it has none.
func (p *pass) lookup(ctx context.Context) func(stack.Ref) (string, bool) {
	return func(ref stack.Ref) (string, bool) {
		k := stack.KindOf(ref.Kind)
		if k == nil {
			return "", false
		}
		obj, err := p.get(ctx, k, ref.Name)
		if err != nil || obj == nil {
			return "", false
		}
		return stack.Lookup(obj, ref.Path, func(group string) []string { return p.members(ctx, group) })
	}
}

// members returns the first addresses of a group's members, sorted by
// member name.
func (p *pass) members(ctx context.Context, group string) []string {
	objs, _, err := p.c.o.Store.List(ctx, api.InstanceKind, p.s.Metadata.Project, store.ListOptions{Filter: func(o api.Object) bool {
		return o.Meta().Labels[api.LabelGroup] == group
	}})
	if err != nil {
		return nil
	}
	slices.SortFunc(objs, func(a, b api.Object) int { return strings.Compare(a.Meta().Name, b.Meta().Name) })
	var out []string
	for _, o := range objs {
		in := o.(*api.Instance)
		if in.Metadata.DeletionTimestamp == nil && len(in.Status.Interfaces) > 0 && in.Status.Interfaces[0].IP != "" {
			out = append(out, in.Status.Interfaces[0].IP)
		}
	}
	return out
}

// owns reports whether obj carries this stack's labels.
func (p *pass) owns(obj api.Object) bool {
	l := obj.Meta().Labels
	if l[api.LabelStack] != p.s.Metadata.Name {
		return false
	}
	return obj.GetKind().Namespaced || l[api.LabelStackProject] == p.s.Metadata.Project
}

// labels returns the labels of resource r's object: its own and the
// stack's.
func (p *pass) labels(k *api.Kind, r api.StackResource, live map[string]string) map[string]string {
	out := laid(live, r.Labels)
	out[api.LabelStack] = p.s.Metadata.Name
	if !k.Namespaced {
		out[api.LabelStackProject] = p.s.Metadata.Project
	}
	return out
}

// laid returns a copy of live with want laid over it: what the stack sets
// wins, what it does not set is kept.
func laid(live, want map[string]string) map[string]string {
	out := maps.Clone(live)
	if out == nil {
		out = make(map[string]string, len(want))
	}
	maps.Copy(out, want)
	return out
}

// build makes the object of resource r with its resolved spec.
func (p *pass) build(k *api.Kind, r api.StackResource, resolved json.RawMessage) (api.Object, error) {
	meta := api.ObjectMeta{Name: r.Name, Labels: p.labels(k, r, nil), Annotations: maps.Clone(r.Annotations)}
	if k.Namespaced {
		meta.Project = p.s.Metadata.Project
	}
	doc := map[string]any{"kind": k.Name, "metadata": meta}
	if len(resolved) > 0 {
		doc["spec"] = resolved
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", k, r.Name, err)
	}
	obj := k.New()
	if err := json.Unmarshal(b, obj); err != nil {
		return nil, fmt.Errorf("spec of %s %s: %w", k, r.Name, err)
	}
	return obj, nil
}

// merged returns live with the fields of the resolved spec laid over its
// spec (what the stack does not set, such as server defaults, is kept)
// and the stack's labels added.
func (p *pass) merged(live api.Object, r api.StackResource, resolved json.RawMessage) (api.Object, error) {
	k := live.GetKind()
	b, err := json.Marshal(live)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", k, r.Name, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", k, r.Name, err)
	}
	var want any
	if len(resolved) > 0 {
		if err := json.Unmarshal(resolved, &want); err != nil {
			return nil, fmt.Errorf("spec of %s %s: %w", k, r.Name, err)
		}
	}
	doc["spec"] = overlay(doc["spec"], want)
	out := k.New()
	b, _ = json.Marshal(doc)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("spec of %s %s: %w", k, r.Name, err)
	}
	out.Meta().Labels = p.labels(k, r, live.Meta().Labels)
	if len(r.Annotations) > 0 {
		out.Meta().Annotations = laid(live.Meta().Annotations, r.Annotations)
	}
	return out, nil
}

// overlay lays want over have: objects field by field, lists of the same
// length element by element, anything else replaced. A list element that
// the stack changed is replaced whole, so that what the server derived
// from the old element (a rule's portMax and ID, a listener's name) is
// derived again instead of kept beside the new values.
func overlay(have, want any) any {
	switch w := want.(type) {
	case nil:
		return have
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return w
		}
		out := maps.Clone(h)
		for key, v := range w {
			out[key] = overlay(h[key], v)
		}
		return out
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return w
		}
		out := make([]any, len(w))
		for i := range w {
			if covers(h[i], w[i]) {
				out[i] = h[i]
			} else {
				out[i] = w[i]
			}
		}
		return out
	}
	return want
}

// covers reports whether have holds every field want sets, with the same
// value (fields want leaves out, such as server defaults, do not count).
func covers(have, want any) bool {
	hb, err1 := json.Marshal(have)
	wb, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && len(stack.Diff(wb, hb)) == 0
}

// specJSON returns the JSON of an object's spec.
func specJSON(obj api.Object) (json.RawMessage, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.GetKind(), err)
	}
	var doc struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", obj.GetKind(), err)
	}
	return doc.Spec, nil
}

// hashOf identifies what the stack last asked of a resource: its labels,
// annotations and resolved spec.
func hashOf(r api.StackResource, resolved json.RawMessage) string {
	h := sha256.New()
	b, _ := json.Marshal(r.Labels)
	h.Write(b)
	h.Write([]byte{0})
	h.Write(resolved)
	if len(r.Annotations) > 0 {
		// Only then, so that the hashes of resources without any stay
		// what they were before annotations.
		b, _ = json.Marshal(r.Annotations)
		h.Write([]byte{0})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// idempotencyKey is the key of one create of a resource: the same for
// every attempt of that create (same stack, resource, spec and previous
// object), another for the next.
func idempotencyKey(stackUID, kind, name, prevUID, hash string) string {
	h := sha256.Sum256([]byte(stackUID + "\x00" + kind + "\x00" + name + "\x00" + prevUID + "\x00" + hash))
	return "stack-" + hex.EncodeToString(h[:20])
}

// ready reports whether an object is up: an instance running; any other
// kind once it exists.
func ready(obj api.Object) bool {
	if in, ok := obj.(*api.Instance); ok {
		return in.Status.Phase == api.PhaseRunning
	}
	return false
}

// prefixSpec turns a field of the spec as stack.Diff names it into a
// path from the object ("spec.count").
func prefixSpec(field string) string {
	if field == "" || strings.HasPrefix(field, "spec") || strings.HasPrefix(field, "metadata.") {
		return field
	}
	if strings.HasPrefix(field, "[") {
		return "spec" + field
	}
	return "spec." + field
}

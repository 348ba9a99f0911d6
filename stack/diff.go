package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// FieldChange is one field that differs: its path ("spec.count",
// "spec.rules[2]") and the wanted and actual values as JSON ("" when the
// field is missing).
type FieldChange struct{ Field, Want, Got string }

// Diff compares a desired spec (resolved) with a live object's spec on
// the fields the desired spec sets only: a field it leaves out (a server
// default, a server-set rule ID) is not a difference. Objects are compared
// key by key, lists element by element when they have the same length and
// as a whole otherwise, scalars as JSON values (1 equals 1.0); an image
// "name" equals the "project/name" the server stores. Paths start with
// "spec.". It returns nil when they are equal.
func Diff(desired, live json.RawMessage) []FieldChange {
	var out []FieldChange
	diffValue("spec", decodeAny(desired), decodeAny(live), &out)
	return out
}

func diffValue(path string, want, got any, out *[]FieldChange) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if len(w) > 0 {
				*out = append(*out, change(path, want, got))
			}
			return
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			diffValue(path+"."+k, w[k], g[k], out)
		}
	case []any:
		g, ok := got.([]any)
		if !ok && len(w) == 0 && got == nil {
			return // an empty list and a missing one are the same
		}
		if !ok || len(g) != len(w) {
			*out = append(*out, change(path, want, got))
			return
		}
		for i := range w {
			diffValue(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], out)
		}
	case nil:
		// null in the desired spec asks for nothing.
	default:
		if !scalarEqual(want, got) && !sameImage(path, want, got) {
			*out = append(*out, change(path, want, got))
		}
	}
}

// scalarEqual compares JSON scalars; a zero desired value equals a
// missing field (omitempty leaves zero values out of live objects).
func scalarEqual(want, got any) bool {
	if got == nil {
		return reflect.ValueOf(want).IsZero()
	}
	return reflect.DeepEqual(want, got)
}

// sameImage reports an image named by the file as "name" and stored by
// the server as "project/name" (instances and group templates).
func sameImage(path string, want, got any) bool {
	if !strings.HasSuffix(path, ".image") {
		return false
	}
	w, ok1 := want.(string)
	g, ok2 := got.(string)
	return ok1 && ok2 && !strings.Contains(w, "/") && strings.HasSuffix(g, "/"+w)
}

// change records a difference whose values are printed as JSON.
// DiffMetadata compares the labels and annotations a resource sets with
// a live object's: a key the resource sets that the object lacks or holds
// with another value is a difference ("metadata.labels.app"); keys the
// resource does not set are not.
func DiffMetadata(r api.StackResource, live *api.ObjectMeta) []FieldChange {
	var out []FieldChange
	for _, f := range []struct {
		path       string
		want, have map[string]string
	}{{"metadata.labels", r.Labels, live.Labels}, {"metadata.annotations", r.Annotations, live.Annotations}} {
		for _, k := range slices.Sorted(maps.Keys(f.want)) {
			got, ok := f.have[k]
			switch {
			case !ok:
				out = append(out, change(f.path+"."+k, f.want[k], nil))
			case got != f.want[k]:
				out = append(out, change(f.path+"."+k, f.want[k], got))
			}
		}
	}
	return out
}

func change(path string, want, got any) FieldChange {
	return FieldChange{Field: path, Want: jsonText(want), Got: jsonText(got)}
}

// jsonText is v as JSON for people to read: "<" stays "<".
func jsonText(v any) string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Plan actions.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
)

// Change is what applying the stack would do to one resource: Action is
// create, update (with the fields that change), delete or unchanged.
type Change struct {
	Action     string
	Kind, Name string
	// Source is where the resource is written ("" for a delete).
	Source string
	Fields []FieldChange
}

// Plan compares a rendered spec with what exists: the stack's owned
// resources (its status) and the live objects (get returns a live
// object's JSON, or false). Changes come in dependency order (file order
// when the spec has a cycle), then the deletes of owned resources the
// spec no longer names in reverse order.
//
// References are resolved from the live objects; a field whose
// references cannot be resolved yet (they name objects still to be
// created, or status fields not set yet) is left out of the comparison,
// so before apply Plan cannot know: the values of such references, the
// defaults the server will fill into new objects, whether admission will
// accept the objects (quota, permissions, names taken), and whether an
// existing object the stack does not own will block the apply.
func Plan(spec api.StackSpec, owned []api.StackResourceStatus, get func(kind, name string) (json.RawMessage, bool)) []Change {
	order, err := Order(spec)
	if err != nil {
		order = make([]int, len(spec.Resources))
		for i := range order {
			order[i] = i
		}
	}
	lookup := func(r Ref) (string, bool) {
		raw, ok := get(r.Kind, r.Name)
		if !ok || r.Path == MembersPath {
			return "", false
		}
		return lookupJSON(raw, r.Path)
	}
	var out []Change
	named := map[key]bool{}
	for _, i := range order {
		r := spec.Resources[i]
		named[key{r.Kind, r.Name}] = true
		c := Change{Kind: r.Kind, Name: r.Name, Source: r.Source}
		raw, ok := get(r.Kind, r.Name)
		if !ok {
			c.Action = ActionCreate
			out = append(out, c)
			continue
		}
		desired, _, err := Resolve(r.Spec, lookup)
		if err != nil {
			desired = r.Spec
		}
		desired = dropUnresolved(desired)
		var live struct {
			Metadata api.ObjectMeta  `json:"metadata"`
			Spec     json.RawMessage `json:"spec"`
		}
		_ = json.Unmarshal(raw, &live)
		c.Fields = append(Diff(desired, live.Spec), DiffMetadata(r, &live.Metadata)...)
		c.Action = ActionUnchanged
		if len(c.Fields) > 0 {
			c.Action = ActionUpdate
		}
		out = append(out, c)
	}
	for i := len(owned) - 1; i >= 0; i-- {
		o := owned[i]
		if named[key{o.Kind, o.Name}] {
			continue
		}
		named[key{o.Kind, o.Name}] = true
		out = append(out, Change{Action: ActionDelete, Kind: o.Kind, Name: o.Name})
	}
	return out
}

// dropUnresolved removes the strings that still hold references from a
// spec (object keys are deleted, list elements become null), so Diff
// leaves them out.
func dropUnresolved(raw json.RawMessage) json.RawMessage {
	v := decodeAny(raw)
	if v == nil {
		return raw
	}
	v = dropRefs(v)
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

func dropRefs(v any) any {
	switch x := v.(type) {
	case string:
		if refs, _ := refsIn(x); len(refs) > 0 || strings.Contains(x, "${") {
			return nil
		}
	case []any:
		for i, e := range x {
			x[i] = dropRefs(e)
		}
	case map[string]any:
		for k, e := range x {
			if e = dropRefs(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
	}
	return v
}

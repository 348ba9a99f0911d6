package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Ref is a reference "${Kind/name.path}" to a field of another resource:
// Path is in the API's JSON field names with [i] indexes
// ("status.interfaces[0].ip"), or "members" for an InstanceGroup's
// members' first addresses.
type Ref struct{ Kind, Name, Path string }

// String returns the reference as it is written, "${Kind/name.path}".
func (r Ref) String() string { return "${" + r.Kind + "/" + r.Name + "." + r.Path + "}" }

// exprRE matches one "${...}" expression.
var exprRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// refRE matches the inside of a reference.
var refRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*)/([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.([A-Za-z0-9_.\[\]]+)$`)

// paramPrefix starts a parameter expression "${param.NAME}".
const paramPrefix = "param."

// parseRef parses the inside of "${...}" as a reference.
func parseRef(expr string) (Ref, error) {
	m := refRE.FindStringSubmatch(expr)
	if m == nil {
		return Ref{}, fmt.Errorf("${%s} is not a reference: write ${Kind/name.path}, e.g. ${Instance/db.status.interfaces[0].ip}, or ${param.NAME}", expr)
	}
	if _, err := splitPath(m[4]); err != nil {
		return Ref{}, fmt.Errorf("${%s}: %w", expr, err)
	}
	return Ref{Kind: m[1], Name: m[2], Path: m[4]}, nil
}

// refsIn returns the references of a string and the errors of its
// malformed expressions (parameters are not references and are skipped).
func refsIn(s string) ([]Ref, []error) {
	var refs []Ref
	var errs []error
	for _, m := range exprRE.FindAllStringSubmatch(s, -1) {
		if strings.HasPrefix(m[1], paramPrefix) {
			continue
		}
		r, err := parseRef(m[1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		refs = append(refs, r)
	}
	return refs, errs
}

// RefsOf returns the explicit references in the resource's spec, in the
// order they are written, each once.
func RefsOf(r api.StackResource) []Ref {
	var out []Ref
	seen := map[Ref]bool{}
	walkStrings(decodeAny(r.Spec), "spec", func(_ string, s string) {
		refs, _ := refsIn(s)
		for _, ref := range refs {
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
	})
	return out
}

// Resolve substitutes every reference in raw using lookup (the value of
// Path in the referenced object's JSON, or false while it is not there
// yet) and returns the unresolved ones, which stay in place as written.
// References are in strings only, so a resolved value is a string too.
func Resolve(raw json.RawMessage, lookup func(Ref) (string, bool)) (json.RawMessage, []Ref, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw, nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, fmt.Errorf("resolve references: %w", err)
	}
	var unresolved []Ref
	var bad error
	v = mapStrings(v, func(s string) string {
		return exprRE.ReplaceAllStringFunc(s, func(m string) string {
			expr := m[2 : len(m)-1]
			if strings.HasPrefix(expr, paramPrefix) {
				return m
			}
			ref, err := parseRef(expr)
			if err != nil {
				if bad == nil {
					bad = err
				}
				return m
			}
			if val, ok := lookup(ref); ok {
				return val
			}
			unresolved = append(unresolved, ref)
			return m
		})
	})
	if bad != nil {
		return nil, nil, fmt.Errorf("resolve references: %w", bad)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve references: %w", err)
	}
	return out, unresolved, nil
}

// MembersPath is the path of a reference to an InstanceGroup's members:
// their first addresses, comma-separated, sorted by member name.
const MembersPath = "members"

// Lookup evaluates a path ("status.interfaces[0].ip", "members" for
// groups, through members(group)) on an object. A string is returned as
// it is, other values as JSON; a missing or empty value is false.
func Lookup(obj api.Object, path string, members func(group string) []string) (string, bool) {
	if obj == nil {
		return "", false
	}
	if path == MembersPath && obj.GetKind() == api.InstanceGroupKind {
		if members == nil {
			return "", false
		}
		m := members(obj.Meta().Name)
		if len(m) == 0 {
			return "", false
		}
		return strings.Join(m, ","), true
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return "", false
	}
	return lookupJSON(raw, path)
}

// lookupJSON evaluates a path on an object's JSON.
func lookupJSON(raw json.RawMessage, path string) (string, bool) {
	keys, err := splitPath(path)
	if err != nil {
		return "", false
	}
	v := decodeAny(raw)
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			if k.index >= 0 {
				return "", false
			}
			v = x[k.name]
		case []any:
			if k.index < 0 || k.index >= len(x) {
				return "", false
			}
			v = x[k.index]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, x != ""
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

// pathKey is one step of a path: a field name, or an index (name "").
type pathKey struct {
	name  string
	index int
}

// splitPath splits "status.interfaces[0].ip" into its steps.
func splitPath(path string) ([]pathKey, error) {
	var out []pathKey
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name == "" {
			return nil, fmt.Errorf("path %q has an empty field name", path)
		}
		out = append(out, pathKey{name: name, index: -1})
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil || n < 0 {
				return nil, fmt.Errorf("path %q has a bad index", path)
			}
			out = append(out, pathKey{index: n})
			rest = strings.TrimPrefix(after, "[")
			if after != "" && !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("path %q has a bad index", path)
			}
		}
	}
	return out, nil
}

// decodeAny decodes JSON into maps, slices and scalars (nil on error).
func decodeAny(raw json.RawMessage) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v
}

// walkStrings calls f with the path and value of every string in v, map
// keys in sorted order.
func walkStrings(v any, path string, f func(path, s string)) {
	switch x := v.(type) {
	case string:
		f(path, x)
	case []any:
		for i, e := range x {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), f)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkStrings(x[k], path+"."+k, f)
		}
	}
}

// mapStrings returns v with every string replaced by f(string).
func mapStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case []any:
		for i, e := range x {
			x[i] = mapStrings(e, f)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = mapStrings(e, f)
		}
	}
	return v
}

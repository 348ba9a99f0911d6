package stack

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/stack"
)

// The server may store a field otherwise than it was written (an image
// name qualified with its project). Such fields are remembered per owned
// object (StackResourceStatus.Defaulted) after each write, and the
// stack's value is read as the stored one while both hold, so that they
// are neither drift nor rewritten on every pass.

// defaulted returns the fields of stored, the object as written from
// resolved, whose values differ from resolved's.
func defaulted(resolved json.RawMessage, stored api.Object) []api.StackFieldValue {
	live, err := specJSON(stored)
	if err != nil {
		return nil
	}
	var out []api.StackFieldValue
	for _, f := range stack.Diff(resolved, live) {
		out = append(out, api.StackFieldValue{Field: f.Field, Want: f.Want, Got: f.Got})
	}
	return out
}

// adjust returns resolved with each defaulted field whose value is still
// the one written replaced by the value the server stored.
func adjust(resolved json.RawMessage, ds []api.StackFieldValue) json.RawMessage {
	if len(ds) == 0 || len(resolved) == 0 {
		return resolved
	}
	var spec any
	if err := json.Unmarshal(resolved, &spec); err != nil {
		return resolved
	}
	root := map[string]any{"spec": spec}
	for _, d := range ds {
		cur, ok := getPath(root, d.Field)
		if !ok || jsonText(cur) != d.Want {
			continue
		}
		var got any
		if d.Got != "" && json.Unmarshal([]byte(d.Got), &got) != nil {
			continue
		}
		setPath(root, d.Field, got)
	}
	b, err := json.Marshal(root["spec"])
	if err != nil {
		return resolved
	}
	return b
}

// segments splits "spec.rules[2].port" into "spec", "rules", 2, "port".
func segments(path string) []any {
	var out []any
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if err != nil {
				return nil
			}
			out = append(out, n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

func getPath(root any, path string) (any, bool) {
	cur := root
	for _, s := range segments(path) {
		switch k := s.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil, false
			}
			cur = l[k]
		}
	}
	return cur, true
}

func setPath(root any, path string, v any) {
	segs := segments(path)
	if len(segs) == 0 {
		return
	}
	cur := root
	for i, s := range segs {
		last := i == len(segs)-1
		switch k := s.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return
			}
			if last {
				m[k] = v
				return
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return
			}
			if last {
				l[k] = v
				return
			}
			cur = l[k]
		}
	}
}

func jsonText(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

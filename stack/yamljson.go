package stack

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// toJSONValue converts a YAML node into a value encoding/json writes:
// mappings with string keys (each once), sequences and scalars of the
// JSON types.
func toJSONValue(d document, n *yaml.Node, path string) (any, ErrorList) {
	switch n.Kind {
	case yaml.AliasNode:
		return toJSONValue(d, n.Alias, path)
	case yaml.MappingNode:
		var errs ErrorList
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := path + "." + k.Value
			if k.Kind != yaml.ScalarNode {
				errs = append(errs, Error{Source: d.at(k), Field: path, Message: "a key is a string"})
				continue
			}
			if _, dup := m[k.Value]; dup {
				errs = append(errs, Error{Source: d.at(k), Field: field, Message: "is given more than once"})
				continue
			}
			x, e := toJSONValue(d, v, field)
			errs = append(errs, e...)
			m[k.Value] = x
		}
		return m, errs
	case yaml.SequenceNode:
		var errs ErrorList
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			x, e := toJSONValue(d, c, fmt.Sprintf("%s[%d]", path, i))
			errs = append(errs, e...)
			l = append(l, x)
		}
		return l, errs
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, ErrorList{{Source: d.at(n), Field: path, Message: err.Error()}}
		}
		v = jsonScalar(n, v)
		if d.whole[n] {
			return wholeParam{text: n.Value, value: v}, nil
		}
		return v, nil
	}
	return nil, ErrorList{{Source: d.at(n), Field: path, Message: "unsupported YAML node"}}
}

// wholeParam is a scalar that was exactly one ${param.NAME}: its value
// in the parameter's YAML type, and its text for string fields.
type wholeParam struct {
	text  string
	value any
}

// settle replaces each wholeParam in v by its text where t (the Go type
// v decodes into; nil when unknown) is a string, by its value elsewhere.
func settle(v any, t reflect.Type) any {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case wholeParam:
		if t != nil && t.Kind() == reflect.String {
			return x.text
		}
		return x.value
	case map[string]any:
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		for k, e := range x {
			var et reflect.Type
			switch {
			case fields != nil:
				et = fields[k]
			case t != nil && t.Kind() == reflect.Map:
				et = t.Elem()
			}
			x[k] = settle(e, et)
		}
	case []any:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i, e := range x {
			x[i] = settle(e, et)
		}
	}
	return v
}

// specType returns the Go type of a kind's spec, or nil.
func specType(kind string) reflect.Type {
	k := KindOf(kind)
	if k == nil {
		return nil
	}
	if f, ok := reflect.TypeOf(k.New()).Elem().FieldByName("Spec"); ok {
		return f.Type
	}
	return nil
}

// jsonScalar turns a decoded YAML scalar into a JSON value.
func jsonScalar(n *yaml.Node, v any) any {
	{
		switch x := v.(type) {
		case nil, string, bool:
			return x
		case int:
			return json.Number(strconv.Itoa(x))
		case int64:
			return json.Number(strconv.FormatInt(x, 10))
		case uint64:
			return json.Number(strconv.FormatUint(x, 10))
		case float64:
			return x
		default:
			// Timestamps and binary: keep the text as written.
			return n.Value
		}
	}
}

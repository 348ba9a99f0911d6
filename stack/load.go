package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// HeaderKind is the kind of the optional header document of a stack.
const HeaderKind = "Stack"

// document is one YAML document of a stack file.
type document struct {
	file string
	node *yaml.Node // the document's root mapping
	// whole marks the scalars that were exactly one ${param.NAME}: they
	// take the value's YAML type unless their field is a string.
	whole map[*yaml.Node]bool
}

func (d document) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", d.file, n.Line) }

// Load reads files and directories (*.yaml and *.yml in name order),
// renders ${param.NAME} from the header's defaults, values files (YAML
// maps of name to value) and sets (sets win over values files, later
// values files over earlier ones), and returns the stack name from the
// header ("" if none) and the rendered spec, checked by Check without
// existing objects. A scalar that is exactly one unquoted ${param.NAME}
// takes the YAML type of the parameter's value (3 is a number); inside a
// longer string the value is substituted as text. An Image may give
// spec.source as an ImageSource, whose relative file is made relative to
// the current directory. Every error of every
// file is returned at once as an ErrorList whose entries print as
// "file:line: field: message".
func Load(paths []string, values []string, sets map[string]string) (name string, spec api.StackSpec, err error) {
	var errs ErrorList
	files, err := expand(paths)
	if err != nil {
		return "", spec, err
	}
	var docs []document
	for _, f := range files {
		ds, e := parseFile(f)
		errs = append(errs, e...)
		docs = append(docs, ds...)
	}
	var header *document
	var resources []document
	for i := range docs {
		d := docs[i]
		if kind := scalarAt(d.node, "kind"); kind == HeaderKind {
			if header != nil {
				errs = append(errs, Error{Source: d.at(d.node), Field: "kind", Message: fmt.Sprintf("a second Stack header (the first is at %s)", header.at(header.node))})
				continue
			}
			header = &docs[i]
			continue
		}
		resources = append(resources, d)
	}
	params := map[string]parameter{}
	if header != nil {
		var e ErrorList
		name, spec, params, e = parseHeader(*header)
		errs = append(errs, e...)
	}
	vals, e := paramValues(params, values, sets, header)
	errs = append(errs, e...)
	spec.Parameters = nil
	if len(vals) > 0 {
		spec.Parameters = vals
	}
	if header != nil {
		if out := mapAt(header.node, "spec", "outputs"); out != nil {
			errs = append(errs, render(*header, out, "spec.outputs", vals, params)...)
			spec.Outputs = map[string]string{}
			for i := 0; i+1 < len(out.Content); i += 2 {
				k, v := out.Content[i], out.Content[i+1]
				if v.Kind != yaml.ScalarNode {
					errs = append(errs, Error{Source: header.at(v), Field: "spec.outputs." + k.Value, Message: "an output is a string"})
					continue
				}
				spec.Outputs[k.Value] = v.Value
			}
		}
	}
	spec.Resources = []api.StackResource{}
	for _, d := range resources {
		errs = append(errs, render(d, d.node, "", vals, params)...)
		r, e := resourceOf(d)
		errs = append(errs, e...)
		relocateSource(&r, d.file)
		spec.Resources = append(spec.Resources, r)
	}
	if len(errs) > 0 {
		return name, spec, errs
	}
	locate := func(i int, field string) string {
		d := header
		if i >= 0 && i < len(resources) {
			d = &resources[i]
		}
		if d == nil {
			return ""
		}
		return fmt.Sprintf("%s:%d", d.file, lineAt(d.node, field))
	}
	if errs := check(spec, nil, true, locate); len(errs) > 0 {
		return name, spec, errs
	}
	return name, spec, nil
}

// expand lists the files of paths: files as given, directories' *.yaml
// and *.yml files in name order.
func expand(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no stack files given")
	}
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read stack: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read stack: %w", err)
		}
		var names []string
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				names = append(names, filepath.Join(p, e.Name()))
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("read stack: %s holds no .yaml or .yml files", p)
		}
		out = append(out, names...)
	}
	return out, nil
}

// parseFile reads the documents of a YAML file; empty documents are
// skipped.
func parseFile(file string) ([]document, ErrorList) {
	f, err := os.Open(file)
	if err != nil {
		return nil, ErrorList{{Source: file, Message: err.Error()}}
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, ErrorList{yamlError(file, err)}
		}
		if len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return docs, ErrorList{{Source: fmt.Sprintf("%s:%d", file, root.Line), Message: "a document is a mapping with kind, metadata and spec"}}
		}
		docs = append(docs, document{file: file, node: root, whole: map[*yaml.Node]bool{}})
	}
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into an Error with its line.
func yamlError(file string, err error) Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return Error{Source: file + ":" + m[1], Message: m[2]}
	}
	return Error{Source: file, Message: strings.TrimPrefix(msg, "yaml: ")}
}

// valueOf returns the value node of key in a mapping node, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalarAt returns the scalar at a key of a mapping, or "".
func scalarAt(m *yaml.Node, key string) string {
	if n := valueOf(m, key); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// mapAt returns the mapping at a path of keys, or nil.
func mapAt(m *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		m = valueOf(m, k)
	}
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	return m
}

// lineAt returns the line a field path ("spec.rules[2].cidr") is written
// on in a document: the line of its key for a mapping's field, of the
// element for a list's, or of the deepest part of the path that exists.
func lineAt(root *yaml.Node, field string) int {
	n, line := root, root.Line
	if field == "" {
		return line
	}
	keys, err := splitPath(field)
	if err != nil {
		return line
	}
	for _, k := range keys {
		switch {
		case k.index >= 0 && n.Kind == yaml.SequenceNode && k.index < len(n.Content):
			n = n.Content[k.index]
			line = n.Line
		case k.index < 0 && n.Kind == yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k.name {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		default:
			return line
		}
	}
	return line
}

// parseHeader reads the Stack header: its name, drift, parameters and
// (unrendered) outputs.
func parseHeader(d document) (string, api.StackSpec, map[string]parameter, ErrorList) {
	var errs ErrorList
	var spec api.StackSpec
	params := map[string]parameter{}
	bad := func(n *yaml.Node, field, format string, args ...any) {
		errs = append(errs, Error{Source: d.at(n), Field: field, Message: fmt.Sprintf(format, args...)})
	}
	errs = append(errs, knownKeys(d, d.node, "", "kind", "metadata", "spec")...)
	meta := valueOf(d.node, "metadata")
	errs = append(errs, knownKeys(d, meta, "metadata", "name")...)
	name := scalarAt(meta, "name")
	if name != "" {
		if e := api.ValidateName("metadata.name", name); e != nil {
			bad(valueOf(meta, "name"), "metadata.name", "%s", e.Message)
		}
	}
	sp := valueOf(d.node, "spec")
	errs = append(errs, knownKeys(d, sp, "spec", "drift", "parameters", "outputs")...)
	if n := valueOf(sp, "drift"); n != nil {
		spec.Drift = n.Value
		if n.Value != api.DriftCorrect && n.Value != api.DriftReport {
			bad(n, "spec.drift", "drift %q is not valid: use %s or %s", n.Value, api.DriftCorrect, api.DriftReport)
		}
	}
	if ps := valueOf(sp, "parameters"); ps != nil {
		if ps.Kind != yaml.MappingNode {
			bad(ps, "spec.parameters", "parameters are a map of name to {default, description}")
		}
		for i := 0; ps.Kind == yaml.MappingNode && i+1 < len(ps.Content); i += 2 {
			k, v := ps.Content[i], ps.Content[i+1]
			field := "spec.parameters." + k.Value
			if !paramNameRE.MatchString(k.Value) {
				bad(k, field, "parameter name %q is not valid: use letters, digits, '_' and '-'", k.Value)
				continue
			}
			var p parameter
			switch {
			case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			case v.Kind == yaml.MappingNode:
				errs = append(errs, knownKeys(d, v, field, "default", "description")...)
				if dn := valueOf(v, "default"); dn != nil {
					if dn.Kind != yaml.ScalarNode {
						bad(dn, field+".default", "a default is a scalar")
					} else if dn.Tag != "!!null" {
						val := dn.Value
						p.Default = &val
					}
				}
				p.Description = scalarAt(v, "description")
			default:
				bad(v, field, "a parameter is {default, description}")
			}
			params[k.Value] = p
		}
	}
	if o := valueOf(sp, "outputs"); o != nil && o.Kind != yaml.MappingNode {
		bad(o, "spec.outputs", "outputs are a map of name to expression")
	}
	return name, spec, params, errs
}

var paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// knownKeys reports the keys of a mapping that are not in known.
func knownKeys(d document, m *yaml.Node, path string, known ...string) ErrorList {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var errs ErrorList
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		ok := false
		for _, n := range known {
			ok = ok || k.Value == n
		}
		if !ok {
			errs = append(errs, Error{Source: d.at(k), Field: strings.TrimPrefix(path+"."+k.Value, "."), Message: fmt.Sprintf("unknown field %q", k.Value)})
		}
	}
	return errs
}

// resourceOf builds a StackResource from a rendered document.
func resourceOf(d document) (api.StackResource, ErrorList) {
	var errs ErrorList
	r := api.StackResource{Source: d.at(d.node)}
	errs = append(errs, knownKeys(d, d.node, "", "kind", "metadata", "spec")...)
	kind := valueOf(d.node, "kind")
	if kind == nil || kind.Kind != yaml.ScalarNode || kind.Value == "" {
		errs = append(errs, Error{Source: d.at(d.node), Field: "kind", Message: "kind is required"})
	} else {
		r.Kind = kind.Value
	}
	meta := valueOf(d.node, "metadata")
	if meta == nil || meta.Kind != yaml.MappingNode {
		errs = append(errs, Error{Source: d.at(d.node), Field: "metadata.name", Message: "metadata.name is required"})
	} else {
		errs = append(errs, knownKeys(d, meta, "metadata", "name", "labels", "annotations")...)
		r.Name = scalarAt(meta, "name")
		var e ErrorList
		r.Labels, e = stringMap(d, meta, "labels")
		errs = append(errs, e...)
		r.Annotations, e = stringMap(d, meta, "annotations")
		errs = append(errs, e...)
	}
	if sp := valueOf(d.node, "spec"); sp != nil {
		v, e := toJSONValue(d, sp, "spec")
		errs = append(errs, e...)
		v = settle(v, specType(r.Kind))
		if len(e) == 0 {
			b, err := json.Marshal(v)
			if err != nil {
				errs = append(errs, Error{Source: d.at(sp), Field: "spec", Message: err.Error()})
			}
			r.Spec = b
		}
	}
	return r, errs
}

// stringMap reads metadata.field, a map of key to value (values that are
// not strings are taken as their JSON text); nil when absent.
func stringMap(d document, meta *yaml.Node, field string) (map[string]string, ErrorList) {
	n := valueOf(meta, field)
	if n == nil {
		return nil, nil
	}
	v, errs := toJSONValue(d, n, "metadata."+field)
	v = settle(v, reflect.TypeFor[map[string]string]())
	m, ok := v.(map[string]any)
	if !ok {
		if len(errs) == 0 {
			errs = append(errs, Error{Source: d.at(n), Field: "metadata." + field, Message: field + " are a map of key to value"})
		}
		return nil, errs
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			s = jsonText(x)
		}
		out[k] = s
	}
	return out, errs
}

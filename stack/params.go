package stack

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parameter is one parameter declared in a stack's header.
type parameter struct {
	Default     *string
	Description string
}

// paramValues merges defaults, values files and sets, and reports
// unknown and missing parameters.
func paramValues(params map[string]parameter, values []string, sets map[string]string, header *document) (map[string]string, ErrorList) {
	var errs ErrorList
	vals := map[string]string{}
	for n, p := range params {
		if p.Default != nil {
			vals[n] = *p.Default
		}
	}
	for _, file := range values {
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, Error{Source: file, Message: err.Error()})
			continue
		}
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			errs = append(errs, yamlError(file, err))
			continue
		}
		if len(n.Content) == 0 {
			continue
		}
		m := n.Content[0]
		if m.Kind != yaml.MappingNode {
			errs = append(errs, Error{Source: fmt.Sprintf("%s:%d", file, m.Line), Message: "a values file is a map of parameter name to value"})
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			src := fmt.Sprintf("%s:%d", file, k.Line)
			if _, ok := params[k.Value]; !ok {
				errs = append(errs, Error{Source: src, Field: k.Value, Message: "unknown parameter" + declaredList(params)})
				continue
			}
			if v.Kind != yaml.ScalarNode {
				errs = append(errs, Error{Source: src, Field: k.Value, Message: "a parameter's value is a scalar"})
				continue
			}
			vals[k.Value] = v.Value
		}
	}
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := params[n]; !ok {
			errs = append(errs, Error{Source: "--set", Field: n, Message: "unknown parameter" + declaredList(params)})
			continue
		}
		vals[n] = sets[n]
	}
	var missing []string
	for n := range params {
		if _, ok := vals[n]; !ok {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		src := ""
		if header != nil {
			src = fmt.Sprintf("%s:%d", header.file, lineAt(header.node, "spec.parameters."+n))
		}
		errs = append(errs, Error{Source: src, Field: "spec.parameters." + n, Message: fmt.Sprintf("parameter %s is required: give --set %s=VALUE or a values file", n, n)})
	}
	return vals, errs
}

// declaredList lists the declared parameters for an error message.
func declaredList(params map[string]parameter) string {
	if len(params) == 0 {
		return ": the stack declares no parameters"
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	return ": the stack declares " + strings.Join(names, ", ")
}

// render substitutes ${param.NAME} in the scalars under n, in place. A
// declared parameter without a value is left as it is (it is reported
// once, as missing); an undeclared one is an error.
func render(d document, n *yaml.Node, path string, vals map[string]string, params map[string]parameter) ErrorList {
	var errs ErrorList
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, render(d, n.Content[i+1], strings.TrimPrefix(path+"."+n.Content[i].Value, "."), vals, params)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, render(d, c, fmt.Sprintf("%s[%d]", path, i), vals, params)...)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${"+paramPrefix) {
			return nil
		}
		whole := exprRE.FindStringSubmatch(n.Value)
		out := exprRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			expr := m[2 : len(m)-1]
			pn, ok := strings.CutPrefix(expr, paramPrefix)
			if !ok {
				return m
			}
			v, ok := vals[pn]
			if !ok {
				if _, declared := params[pn]; !declared {
					errs = append(errs, Error{Source: d.at(n), Field: path, Message: fmt.Sprintf("unknown parameter %q in %s%s", pn, m, declaredList(params))})
				}
				return m
			}
			return v
		})
		if whole != nil && whole[0] == n.Value && strings.HasPrefix(whole[1], paramPrefix) {
			// The whole scalar is the parameter: it takes the value's
			// own YAML type (settled against the field's type later).
			n.Tag = ""
			n.Style = 0
			d.whole[n] = true
		} else {
			n.Tag = "!!str"
		}
		n.Value = out
	}
	return errs
}

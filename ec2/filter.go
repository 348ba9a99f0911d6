package ec2

import "strings"

// Filters: every Describe action declares the filters it knows as a
// filterSet; "tag:KEY", "tag-key" and "tag-value" work wherever the
// objects have tags. A filter the action does not know is an error
// naming it (never silently ignored), as AWS answers.

// Bounds of filters.
const (
	maxFilters      = 50
	maxFilterValues = 200
)

// filterSet maps a filter's name to the values of an object it compares.
type filterSet[T any] map[string]func(T) []string

// filter is one parsed Filter.N.
type filter struct {
	name   string
	values []string
}

// parseFilters reads Filter.N.Name and Filter.N.Value.N against set;
// tags gives an object's tags (nil when the kind has none). The returned
// predicate keeps objects that match every filter (any of its values,
// with '*' and '?' wildcards).
func parseFilters[T any](p Params, set filterSet[T], tags func(T) map[string]string) (func(T) bool, error) {
	structs := p.Structs("Filter")
	if len(structs) > maxFilters {
		return nil, invalidValue("at most %d filters are allowed, %d given", maxFilters, len(structs))
	}
	var fs []func(T) bool
	for _, s := range structs {
		name, ok := s["Name"]
		if !ok || name == "" {
			return nil, missing("Filter.N.Name")
		}
		values := s.List("Value")
		if len(values) > maxFilterValues {
			return nil, invalidValue("the filter '%s' has %d values, at most %d are allowed", clip(name), len(values), maxFilterValues)
		}
		f := filter{name: name, values: values}
		get, err := filterValues(f.name, set, tags)
		if err != nil {
			return nil, err
		}
		fs = append(fs, func(o T) bool { return f.matches(get(o)) })
	}
	return func(o T) bool {
		for _, f := range fs {
			if !f(o) {
				return false
			}
		}
		return true
	}, nil
}

func filterValues[T any](name string, set filterSet[T], tags func(T) map[string]string) (func(T) []string, error) {
	if get, ok := set[name]; ok {
		return get, nil
	}
	if tags != nil {
		switch {
		case strings.HasPrefix(name, "tag:"):
			key := name[len("tag:"):]
			return func(o T) []string {
				if v, ok := tags(o)[key]; ok {
					return []string{v}
				}
				return nil
			}, nil
		case name == "tag-key":
			return func(o T) []string { return keys(tags(o)) }, nil
		case name == "tag-value":
			return func(o T) []string {
				var vs []string
				for _, v := range tags(o) {
					vs = append(vs, v)
				}
				return vs
			}, nil
		}
	}
	return nil, invalidValue("The filter '%s' is invalid", clip(name))
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// matches reports whether any of have matches any of the filter's
// values ('*' any run of characters, '?' one).
func (f filter) matches(have []string) bool {
	for _, want := range f.values {
		for _, h := range have {
			if glob(want, h) {
				return true
			}
		}
	}
	return false
}

// glob matches s against pattern, where '*' stands for any run of
// characters and '?' for one; it runs in O(len(pattern)·len(s)).
func glob(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

package api

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxNameLength bounds resource names (a DNS label).
const MaxNameLength = 63

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidateName checks a resource name: a DNS label of lower-case letters,
// digits and '-', 1 to 63 characters, starting and ending alphanumeric.
func ValidateName(field, name string) *Error {
	const hint = "use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"
	switch {
	case name == "":
		return Invalid(field, hint, "name is required")
	case len(name) > MaxNameLength:
		return Invalid(field, hint, "name is %d characters long, at most %d are allowed", len(name), MaxNameLength)
	case !nameRE.MatchString(name):
		return Invalid(field, hint, "name %q is not valid", truncate(name, 80))
	}
	return nil
}

var labelKeyRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
var labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

// ValidateLabels checks label keys ("[prefix/]name", name at most 63
// characters) and values (at most 63 characters of [A-Za-z0-9_.-]).
func ValidateLabels(field string, labels map[string]string) *Error {
	if len(labels) > 64 {
		return Invalid(field, "use at most 64 labels", "%d labels given", len(labels))
	}
	for k, v := range labels {
		if len(k) > 253 || !labelKeyRE.MatchString(k) || len(k[strings.LastIndex(k, "/")+1:]) > 63 {
			return Invalid(field+"."+truncate(k, 80), "a key is [prefix/]name: letters, digits, '-', '_', '.'; name at most 63 characters", "label key %q is not valid", truncate(k, 80))
		}
		if len(v) > 63 || !labelValueRE.MatchString(v) {
			return Invalid(field+"."+k, "a value is at most 63 letters, digits, '-', '_', '.'", "label value %q is not valid", truncate(v, 80))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Selector is a parsed label selector: comma-separated requirements
// "key=value", "key==value", "key!=value", "key" (exists) and "!key".
type Selector []Requirement

// Requirement is one term of a Selector.
type Requirement struct {
	Key   string
	Op    string // "=", "!=", "exists", "!exists"
	Value string
}

// ParseSelector parses a label selector; an empty string selects everything.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		var r Requirement
		switch {
		case term == "":
			return nil, Invalid("labelSelector", "write key=value, key!=value, key or !key, separated by commas", "empty term in selector %q", truncate(s, 80))
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			r = Requirement{Key: strings.TrimSpace(k), Op: "!=", Value: strings.TrimSpace(v)}
		case strings.Contains(term, "=="):
			k, v, _ := strings.Cut(term, "==")
			r = Requirement{Key: strings.TrimSpace(k), Op: "=", Value: strings.TrimSpace(v)}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			r = Requirement{Key: strings.TrimSpace(k), Op: "=", Value: strings.TrimSpace(v)}
		case strings.HasPrefix(term, "!"):
			r = Requirement{Key: strings.TrimSpace(term[1:]), Op: "!exists"}
		default:
			r = Requirement{Key: term, Op: "exists"}
		}
		if err := ValidateLabels("labelSelector", map[string]string{r.Key: r.Value}); err != nil {
			err.Message = fmt.Sprintf("term %q: %s", truncate(term, 80), err.Message)
			err.Field = "labelSelector"
			return nil, err
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, ok := labels[r.Key]
		switch r.Op {
		case "=":
			if !ok || v != r.Value {
				return false
			}
		case "!=":
			if ok && v == r.Value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}

// String formats the selector back into its text form.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		switch r.Op {
		case "exists":
			parts[i] = r.Key
		case "!exists":
			parts[i] = "!" + r.Key
		default:
			parts[i] = r.Key + r.Op + r.Value
		}
	}
	return strings.Join(parts, ",")
}

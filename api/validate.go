package api

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
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

// Limits of ValidateAnnotations.
const (
	MaxAnnotations          = 64
	MaxAnnotationKeyBytes   = 1024
	MaxAnnotationValueBytes = 4096
	MaxAnnotationsBytes     = 128 << 10
)

// ValidateAnnotations checks annotations: at most MaxAnnotations, keys
// of 1 to MaxAnnotationKeyBytes bytes of UTF-8 text without control
// characters, values of at most MaxAnnotationValueBytes bytes of UTF-8,
// MaxAnnotationsBytes in all.
func ValidateAnnotations(field string, annotations map[string]string) *Error {
	if len(annotations) > MaxAnnotations {
		return Invalid(field, fmt.Sprintf("use at most %d annotations", MaxAnnotations), "%d annotations given", len(annotations))
	}
	total := 0
	for k, v := range annotations {
		switch {
		case k == "" || len(k) > MaxAnnotationKeyBytes || !utf8.ValidString(k) || strings.IndexFunc(k, unicode.IsControl) >= 0:
			return Invalid(field+"."+truncate(k, 80), fmt.Sprintf("a key is 1 to %d bytes of text without control characters", MaxAnnotationKeyBytes), "annotation key %q is not valid", truncate(k, 80))
		case len(v) > MaxAnnotationValueBytes || !utf8.ValidString(v):
			return Invalid(field+"."+truncate(k, 80), fmt.Sprintf("a value is at most %d bytes of UTF-8 text", MaxAnnotationValueBytes), "annotation value of %d bytes is not valid", len(v))
		}
		total += len(k) + len(v)
	}
	if total > MaxAnnotationsBytes {
		return Invalid(field, fmt.Sprintf("annotations may hold at most %d bytes in all", MaxAnnotationsBytes), "%d bytes given", total)
	}
	return nil
}

// ValidateMetaMaps checks an object's labels and annotations, as every
// create and update must.
func ValidateMetaMaps(m *ObjectMeta) *Error {
	if e := ValidateLabels("metadata.labels", m.Labels); e != nil {
		return e
	}
	return ValidateAnnotations("metadata.annotations", m.Annotations)
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

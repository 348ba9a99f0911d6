package stack

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/strictjson"
)

// kindNames are the kinds a stack may hold.
var kindNames = map[string]*api.Kind{
	"VPC":           api.VPCKind,
	"Network":       api.NetworkKind,
	"SecurityGroup": api.SecurityGroupKind,
	"KeyPair":       api.KeyPairKind,
	"Image":         api.ImageKind,
	"Flavor":        api.FlavorKind,
	"Instance":      api.InstanceKind,
	"InstanceGroup": api.InstanceGroupKind,
	"FloatingIP":    api.FloatingIPKind,
	"LoadBalancer":  api.LoadBalancerKind,
}

// KindOf maps a stack kind name to the api.Kind (cluster-scoped Flavor
// included); nil if the kind cannot be in a stack.
func KindOf(name string) *api.Kind { return kindNames[name] }

// kindList names the kinds a stack may hold, for hints.
func kindList() string {
	names := make([]string, 0, len(kindNames))
	for n := range kindNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// specChecks are the checks admission makes on a kind's spec without the
// store. They get a decoded object and must not keep it.
var specChecks = map[*api.Kind]func(api.Object) error{
	api.NetworkKind: func(o api.Object) error {
		return admission.CheckNetworkSpec(o.(*api.Network).Spec)
	},
	api.VPCKind: func(o api.Object) error {
		spec := o.(*api.VPC).Spec
		_, err := admission.CheckVPCSpec(&spec)
		return err
	},
	api.SecurityGroupKind: func(o api.Object) error {
		return admission.CheckSecurityGroupSpec(o.(*api.SecurityGroup).Spec)
	},
	api.KeyPairKind: func(o api.Object) error {
		kp := *o.(*api.KeyPair)
		return admission.ValidateKeyPairCreate(&kp)
	},
	api.InstanceKind: func(o api.Object) error {
		return admission.CheckInstanceSpec(o.(*api.Instance).Spec)
	},
	api.InstanceGroupKind: func(o api.Object) error {
		return admission.CheckGroupSpec(o.(*api.InstanceGroup).Spec)
	},
	api.LoadBalancerKind: func(o api.Object) error {
		return admission.CheckLoadBalancerSpec(o.(*api.LoadBalancer).Spec)
	},
	api.FlavorKind: func(o api.Object) error {
		f := *o.(*api.Flavor)
		return admission.ValidateFlavor(&f)
	},
}

// locator turns a resource index (-1: the header) and a field path into
// the Source of an Error.
type locator func(i int, field string) string

// Check makes the static checks on a rendered spec (the server makes
// them too, where errors name the resource's Source instead of a line):
// known kinds, strict decoding of each spec into its kind's type (unknown
// fields named), names and labels, duplicates (same kind and name),
// references to resources of the stack or, with exists != nil, to
// existing objects of the project, references only in string fields,
// cycles, and the spec checks admission makes without the store (a bad
// CIDR, ports, a public key). Every problem is returned at once, as an
// ErrorList.
func Check(spec api.StackSpec, exists func(kind, name string) bool) error {
	return check(spec, exists, false, func(i int, _ string) string {
		if i < 0 || i >= len(spec.Resources) {
			return ""
		}
		return spec.Resources[i].Source
	}).err()
}

// check makes the checks of Check; sources allows Image source objects
// (ImageSource), which only the CLI replaces.
func check(spec api.StackSpec, exists func(kind, name string) bool, sources bool, locate locator) ErrorList {
	var errs ErrorList
	add := func(i int, field, format string, args ...any) {
		errs = append(errs, Error{Source: locate(i, field), Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch spec.Drift {
	case "", api.DriftCorrect, api.DriftReport:
	default:
		add(-1, "spec.drift", "drift %q is not valid: use %s or %s", spec.Drift, api.DriftCorrect, api.DriftReport)
	}
	seen := map[key]int{}
	for i, r := range spec.Resources {
		k := KindOf(r.Kind)
		if k == nil {
			add(i, "kind", "unknown kind %q: a stack holds %s", r.Kind, kindList())
		}
		if e := api.ValidateName("metadata.name", r.Name); e != nil {
			add(i, "metadata.name", "%s", e.Message)
		} else if j, dup := seen[key{r.Kind, r.Name}]; dup {
			add(i, "metadata.name", "%s %s is already defined at %s", r.Kind, r.Name, spec.Resources[j].Source)
		} else {
			seen[key{r.Kind, r.Name}] = i
		}
		if e := api.ValidateLabels("metadata.labels", r.Labels); e != nil {
			add(i, e.Field, "%s", e.Message)
		}
		if e := api.ValidateAnnotations("metadata.annotations", r.Annotations); e != nil {
			add(i, e.Field, "%s", e.Message)
		}
		for l := range r.Labels {
			if l == api.LabelStack || l == api.LabelStackProject {
				add(i, "metadata.labels."+l, "the label %s is set by the stack", l)
			}
		}
		raw := r.Spec
		if src, err := ImageSourceOf(r); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			add(i, field, "%s", msg)
			k = nil
		} else if src != nil {
			if !sources {
				add(i, "spec.source", "an image source is imported by the CLI: send the image's spec")
			}
			raw = WithoutSource(raw)
		}
		if k != nil {
			for _, e := range checkSpec(k, raw) {
				add(i, e.Field, "%s", e.Message)
			}
		}
	}
	inStack := func(r Ref) bool {
		_, ok := seen[key{r.Kind, r.Name}]
		return ok
	}
	checkRef := func(i int, field string, r Ref) {
		switch {
		case KindOf(r.Kind) == nil:
			add(i, field, "%s: unknown kind %q", r, r.Kind)
		case r.Path == MembersPath && r.Kind != "InstanceGroup":
			add(i, field, "%s: only an InstanceGroup has members", r)
		case i >= 0 && r.Kind == spec.Resources[i].Kind && r.Name == spec.Resources[i].Name:
			add(i, field, "%s: a resource cannot refer to itself", r)
		case inStack(r):
		case exists != nil && exists(r.Kind, r.Name):
		case exists != nil:
			add(i, field, "%s refers to %s/%s, which is neither in the stack nor in the project", r, r.Kind, r.Name)
		default:
			add(i, field, "%s refers to %s/%s, which is not in the stack", r, r.Kind, r.Name)
		}
	}
	for i, r := range spec.Resources {
		walkStrings(decodeAny(r.Spec), "spec", func(field, s string) {
			refs, bad := refsIn(s)
			for _, e := range bad {
				add(i, field, "%v", e)
			}
			for _, ref := range refs {
				checkRef(i, field, ref)
			}
		})
	}
	names := make([]string, 0, len(spec.Outputs))
	for n := range spec.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		field := "spec.outputs." + n
		refs, bad := refsIn(spec.Outputs[n])
		for _, e := range bad {
			add(-1, field, "%v", e)
		}
		for _, ref := range refs {
			checkRef(-1, field, ref)
		}
	}
	if len(errs) == 0 {
		if _, err := Order(spec); err != nil {
			i := -1
			var ce *CycleError
			if errors.As(err, &ce) && len(ce.Resources) > 0 {
				i = ce.Resources[0]
			}
			add(i, "", "%v", err)
		}
	}
	return errs
}

// fieldError is a problem in one field of a spec.
type fieldError struct{ Field, Message string }

// checkSpec decodes a spec strictly into kind's type and makes the
// kind's spec checks, leaving out errors about fields that hold
// references (they are checked once resolved, by admission).
func checkSpec(k *api.Kind, raw json.RawMessage) []fieldError {
	obj := k.New()
	var specType reflect.Type
	if f, ok := reflect.TypeOf(obj).Elem().FieldByName("Spec"); ok {
		specType = f.Type
	}
	v := decodeAny(raw)
	if len(raw) > 0 && v == nil && strings.TrimSpace(string(raw)) != "null" {
		return []fieldError{{"spec", "is not valid JSON"}}
	}
	var errs []fieldError
	var refFields []string
	walkType(v, specType, "spec", func(field, msg string) {
		errs = append(errs, fieldError{field, msg})
	}, func(field string) { refFields = append(refFields, field) })
	if len(errs) > 0 {
		return errs
	}
	body, err := json.Marshal(map[string]json.RawMessage{"spec": orNull(raw)})
	if err != nil {
		return []fieldError{{"spec", err.Error()}}
	}
	if err := strictjson.Decode(body, obj); err != nil {
		return []fieldError{decodeError(err)}
	}
	check := specChecks[k]
	if check == nil {
		return nil
	}
	if err := check(obj); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			for _, f := range refFields {
				if ae.Field == f || strings.HasPrefix(ae.Field, f+".") || strings.HasPrefix(ae.Field, f+"[") {
					return nil
				}
			}
			msg := ae.Message
			if ae.Hint != "" {
				msg += " (" + ae.Hint + ")"
			}
			return []fieldError{{ae.Field, msg}}
		}
		return []fieldError{{"spec", err.Error()}}
	}
	return nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// decodeError names the field of a strict decoding error.
func decodeError(err error) fieldError {
	var (
		te *json.UnmarshalTypeError
		de *strictjson.DuplicateKeyError
		fe *strictjson.FieldError
	)
	switch {
	case errors.As(err, &de):
		return fieldError{de.Path, "is given more than once"}
	case errors.As(err, &fe):
		return fieldError{fe.Path, fe.Err.Error()}
	case errors.As(err, &te):
		return fieldError{te.Field, fmt.Sprintf("expected %s, got %s", te.Type.Kind(), te.Value)}
	}
	return fieldError{"spec", err.Error()}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkType walks a decoded JSON value along the Go type it decodes into,
// reporting unknown fields and references in fields that are not
// strings (bad), and the paths of strings that hold references (refs).
func walkType(v any, t reflect.Type, path string, bad func(field, msg string), refs func(field string)) {
	if t == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := v.(string); ok && strings.Contains(s, "${") {
		if r, _ := refsIn(s); len(r) > 0 {
			if t.Kind() != reflect.String {
				bad(path, fmt.Sprintf("references are allowed in string fields only, not in a %s field", jsonKind(t)))
				return
			}
			refs(path)
		}
		return
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, e := range x {
				walkType(e, t.Elem(), path+"."+k, bad, refs)
			}
		case reflect.Struct:
			fields := jsonFields(t)
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				ft, ok := fields[k]
				if !ok {
					ft, ok = fields[strings.ToLower(k)]
				}
				if !ok {
					bad(path+"."+k, fmt.Sprintf("unknown field %q", k))
					continue
				}
				walkType(x[k], ft, path+"."+k, bad, refs)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range x {
				walkType(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), bad, refs)
			}
		}
	}
}

// jsonFields maps the JSON names of a struct's fields (embedded structs'
// included) to their types; names are also stored lower-cased, as
// encoding/json matches them without case.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
		out[strings.ToLower(name)] = f.Type
	}
	return out
}

// jsonKind names the JSON type a Go type is written as.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.Kind().String()
}

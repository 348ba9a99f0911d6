package apiserver

import (
	"encoding/json"
	"reflect"

	"github.com/ouroboros-cloud/ouro/api"
)

// The generic handlers reach the Kind, Spec and Status fields that every
// API type declares by reflection, so that a new kind needs no new code
// here.

// setKind fills the object's Kind field with its kind name.
func setKind(obj api.Object) {
	if f := field(obj, "Kind"); f.IsValid() && f.Kind() == reflect.String {
		f.SetString(obj.GetKind().Name)
	}
}

// prepareOut readies an object for a response: kind filled and what the
// kind's prepareOut hook removes (secret hashes) removed.
func prepareOut(obj api.Object) api.Object {
	setKind(obj)
	if h := hooks[obj.GetKind()].prepareOut; h != nil {
		h(obj)
	}
	return obj
}

func field(obj api.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName(name)
}

// specOf returns what a user writes in an object: its Spec field, or for
// kinds without one (events) everything but metadata and kind.
func specOf(obj api.Object) any {
	if f := field(obj, "Spec"); f.IsValid() {
		return f.Interface()
	}
	c := reflect.New(reflect.TypeOf(obj).Elem())
	c.Elem().Set(reflect.ValueOf(obj).Elem())
	cp := c.Interface().(api.Object)
	*cp.Meta() = api.ObjectMeta{}
	if f := field(cp, "Kind"); f.IsValid() {
		f.SetString("")
	}
	return cp
}

// copyStatus sets to's Status to from's; both must be of one kind.
func copyStatus(from, to api.Object) {
	src, dst := field(from, "Status"), field(to, "Status")
	if src.IsValid() && dst.IsValid() {
		dst.Set(src)
	}
}

// clearStatus zeroes the object's status.
func clearStatus(obj api.Object) {
	if f := field(obj, "Status"); f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// specEqual reports whether two objects have the same spec.
func specEqual(a, b api.Object) bool {
	ja, err1 := json.Marshal(specOf(a))
	jb, err2 := json.Marshal(specOf(b))
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// cloneObject deep-copies an object through JSON.
func cloneObject(obj api.Object) api.Object {
	out := obj.GetKind().New()
	b, _ := json.Marshal(obj)
	json.Unmarshal(b, out)
	return out
}

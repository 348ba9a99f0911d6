// Package strictjson decodes JSON that comes from untrusted clients
// strictly: exactly one value, no unknown fields, and no key given twice
// in one object. encoding/json lets the last of two equal keys win, so
// `{"flavor":"tiny","flavor":"large"}` would silently become a large
// instance; here it is an error that names the key's path.
package strictjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// ErrTrailingData is returned when more than one JSON value is sent.
var ErrTrailingData = errors.New("unexpected data after the JSON value")

// DuplicateKeyError reports a key that appears more than once in one
// JSON object.
type DuplicateKeyError struct {
	// Path names the key in the API's field syntax: "spec.flavor",
	// "spec.networks[1].network".
	Path string
}

func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate key %q", e.Path)
}

// FieldError is a decoding error that encoding/json reports without the
// field it happened in (bad base64 in a []byte field), with the field.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// badBase64 returns the path of the first string in data that decodes
// into a []byte of t but is not valid base64, or "".
func badBase64(data []byte, t reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	w := walker{onString: func(path string, t reflect.Type, s string) bool {
		if t == nil || t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Uint8 {
			return false
		}
		_, err := base64.StdEncoding.DecodeString(s)
		return err != nil
	}}
	w.value(dec, "", t)
	return w.found
}

// Decode decodes data, which must hold exactly one JSON value, into v. It
// refuses unknown fields (encoding/json's error), repeated keys
// (*DuplicateKeyError) and trailing data (ErrTrailingData). Other errors
// are encoding/json's.
func Decode(data []byte, v any) error {
	if err := checkDuplicates(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			// encoding/json does not say which field held the bad
			// base64; find it.
			if path := badBase64(data, reflect.TypeOf(v)); path != "" {
				return &FieldError{Path: path, Err: err}
			}
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return nil
}

// CheckDuplicates returns a *DuplicateKeyError for the first key that
// appears twice within one object of data. It returns nil for data
// without repeated keys, and also for malformed data: decoding it reports
// the syntax error with its offset. Keys are compared exactly; Decode
// also knows v's type and so catches two spellings of one struct field
// ("flavor" and "Flavor"), which encoding/json matches without case.
func CheckDuplicates(data []byte) error {
	return checkDuplicates(data, nil)
}

func checkDuplicates(data []byte, t reflect.Type) error {
	return scanDuplicates(data, t)
}

// walkDuplicates is checkDuplicates through json.Decoder's tokens: the
// walk badBase64 makes too, kept as the reference the scan is tested
// against.
func walkDuplicates(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var w walker
	err := w.value(dec, "", t)
	var de *DuplicateKeyError
	if errors.As(err, &de) {
		return de
	}
	return nil
}

// maxDepth bounds nesting, as encoding/json does, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

type walker struct {
	depth int
	// onString, when set, is asked about every string value; the walk
	// stops at the first it reports, whose path is kept in found.
	onString func(path string, t reflect.Type, s string) bool
	found    string
}

var errFound = errors.New("found")

// value consumes one JSON value whose path is path and which decodes into
// a value of type t (nil when unknown).
func (w *walker) value(dec *json.Decoder, path string, t reflect.Type) error {
	t = concrete(t)
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		if s, isString := tok.(string); isString && w.onString != nil && w.onString(path, t, s) {
			w.found = path
			return errFound
		}
		return nil
	}
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		return errors.New("too deeply nested")
	}
	switch d {
	case '{':
		var fields map[string]string // JSON name → field identity, for structs
		if t != nil && t.Kind() == reflect.Struct {
			fields = fieldsOf(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, ok := tok.(string)
			if !ok {
				return errors.New("object key is not a string")
			}
			id, name, next := key, key, elem(t)
			if fields != nil {
				id, name, next = fieldOf(t, fields, key)
			}
			// A struct field is named as its type spells it, whatever
			// spelling the client sent.
			p := join(path, name)
			if seen[id] {
				return &DuplicateKeyError{Path: p}
			}
			seen[id] = true
			if err := w.value(dec, p, next); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := w.value(dec, path+"["+strconv.Itoa(i)+"]", elem(t)); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// concrete strips pointers and returns nil for types whose JSON shape is
// not known from the type: interfaces and custom unmarshalers.
func concrete(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Interface:
			return nil
		default:
			return t
		}
	}
	return nil
}

// elem is the type of a map's values or a slice's elements, else nil.
func elem(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		return t.Elem()
	}
	return nil
}

// fieldCache holds fieldsOf's answer per struct type: every API write is
// decoded here, and a type's fields do not change.
var fieldCache sync.Map // reflect.Type → map[string]string

// fieldsOf maps each JSON name of struct t to the index path of its
// field (collectFields), computed once per type. The map is only read.
func fieldsOf(t reflect.Type) map[string]string {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]string)
	}
	m := map[string]string{}
	collectFields(t, "", m)
	fieldCache.Store(t, m)
	return m
}

// collectFields maps each JSON name of struct t (embedded structs'
// promoted fields included) to the index path of its field.
func collectFields(t reflect.Type, prefix string, out map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		id := prefix + strconv.Itoa(i)
		if f.Anonymous && name == "" {
			if ft := concrete(f.Type); ft != nil && ft.Kind() == reflect.Struct {
				collectFields(ft, id+".", out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := out[name]; !taken {
			out[name] = id
		}
	}
}

// fieldOf resolves a JSON key as encoding/json does (an exact name first,
// then one equal without case) to the field's identity, JSON name and
// type. An unknown key is its own identity; decoding refuses it later.
func fieldOf(t reflect.Type, fields map[string]string, key string) (id, name string, ft reflect.Type) {
	id, ok := fields[key]
	name = key
	if !ok {
		for n, fid := range fields {
			if strings.EqualFold(n, key) {
				id, name, ok = fid, n, true
				break
			}
		}
	}
	if !ok {
		return "?" + key, key, nil
	}
	ft = t
	for _, part := range strings.Split(id, ".") {
		i, _ := strconv.Atoi(part)
		ft = concrete(ft).Field(i).Type
	}
	return id, name, ft
}

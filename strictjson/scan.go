package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"sync"
)

// The duplicate-key check reads every API write, so it scans the bytes
// itself rather than through json.Decoder's tokens (which box every
// token and would need every value's path built as it goes): keys are
// compared as the walker does, paths are made only for the duplicate
// found, and the syntax is checked as strictly as encoding/json checks it,
// so that malformed data is left to the decoder to report, as before.

// errSyntax stops a scan of malformed data.
var errSyntax = errors.New("malformed JSON")

// pathElem is one step of a path, made into a string only when a
// duplicate is reported.
type pathElem struct {
	parent *pathElem
	key    string
	index  int // for an array element; key is "" then
	elem   bool
}

func (p *pathElem) String() string {
	if p == nil {
		return ""
	}
	parent := p.parent.String()
	if p.elem {
		return parent + "[" + strconv.Itoa(p.index) + "]"
	}
	return join(parent, p.key)
}

// field is a struct field as the scan needs it: its identity (equal for
// two spellings of one field), JSON name and type.
type field struct {
	id, name string
	typ      reflect.Type
}

// typeInfo is what the scan knows of a type, computed once per type.
type typeInfo struct {
	t      reflect.Type // concrete(t): nil when the shape is not known
	fields map[string]field
	// names maps each JSON name to its field identity, for fieldOf.
	names map[string]string
	elem  reflect.Type
}

var typeInfos sync.Map // reflect.Type → *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if t == nil {
		return &typeInfo{}
	}
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{t: concrete(t)}
	if ct := ti.t; ct != nil {
		ti.elem = elem(ct)
		if ct.Kind() == reflect.Struct {
			ti.names = fieldsOf(ct)
			ti.fields = make(map[string]field, len(ti.names))
			for name := range ti.names {
				id, n, ft := fieldOf(ct, ti.names, name)
				ti.fields[name] = field{id: id, name: n, typ: ft}
			}
		}
	}
	typeInfos.Store(t, ti)
	return ti
}

// scanner checks one JSON value for repeated keys.
type scanner struct {
	data  []byte
	i     int
	depth int
}

// scanDuplicates returns a *DuplicateKeyError for the first key of data
// given twice in one object, or nil (malformed data included).
func scanDuplicates(data []byte, t reflect.Type) error {
	s := scanner{data: data}
	var de *DuplicateKeyError
	if err := s.value(nil, t); errors.As(err, &de) {
		return de
	}
	return nil
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value at path, which decodes into t.
func (s *scanner) value(path *pathElem, t reflect.Type) error {
	s.space()
	if s.i >= len(s.data) {
		return errSyntax
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(path, t)
	case c == '[':
		return s.array(path, t)
	case c == '"':
		_, _, err := s.str(false)
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errSyntax
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > maxDepth {
		return errors.New("too deeply nested")
	}
	s.i++ // the opening delimiter
	return nil
}

func (s *scanner) object(path *pathElem, t reflect.Type) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	ti := infoOf(t)
	// Objects are small: a slice finds a repeat as fast as a map would.
	var seenBuf [16]string
	seen := seenBuf[:0]
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return errSyntax
		}
		key, _, err := s.str(true)
		if err != nil {
			return err
		}
		id, name, next := key, key, ti.elem
		if ti.fields != nil {
			if f, ok := ti.fields[key]; ok {
				id, name, next = f.id, f.name, f.typ
			} else {
				id, name, next = fieldOf(ti.t, ti.names, key)
			}
		}
		for _, k := range seen {
			if k == id {
				return &DuplicateKeyError{Path: join(path.String(), name)}
			}
		}
		seen = append(seen, id)
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errSyntax
		}
		s.i++
		if err := s.value(&pathElem{parent: path, key: name}, next); err != nil {
			return err
		}
		if end, err := s.separator('}'); end || err != nil {
			return err
		}
	}
}

// separator reads what follows a member or an element: a comma (more
// follow) or closer (the end).
func (s *scanner) separator(closer byte) (end bool, err error) {
	s.space()
	if s.i >= len(s.data) {
		return false, errSyntax
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		return false, nil
	case closer:
		s.i++
		return true, nil
	}
	return false, errSyntax
}

func (s *scanner) array(path *pathElem, t reflect.Type) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	next := infoOf(t).elem
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := s.value(&pathElem{parent: path, index: n, elem: true}, next); err != nil {
			return err
		}
		if end, err := s.separator(']'); end || err != nil {
			return err
		}
	}
}

// str scans a string; with want it returns its value, unescaped.
func (s *scanner) str(want bool) (string, bool, error) {
	start := s.i
	s.i++ // the opening quote
	escaped := false
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			if !want {
				return "", escaped, nil
			}
			if !escaped {
				return string(s.data[start+1 : s.i-1]), false, nil
			}
			var v string
			if err := json.Unmarshal(s.data[start:s.i], &v); err != nil {
				return "", true, errSyntax
			}
			return v, true, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.data) {
				return "", true, errSyntax
			}
			switch s.data[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.data) {
					return "", true, errSyntax
				}
				for _, h := range s.data[s.i+2 : s.i+6] {
					if !isHex(h) {
						return "", true, errSyntax
					}
				}
				s.i += 6
			default:
				return "", true, errSyntax
			}
		case c < 0x20:
			return "", escaped, errSyntax
		default:
			s.i++
		}
	}
	return "", escaped, errSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) literal(lit string) error {
	if string(s.data[s.i:min(len(s.data), s.i+len(lit))]) != lit {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

// number scans a number as JSON spells one: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d := s.data
	if d[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(d) && d[s.i] >= '0' && d[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	switch {
	case s.i < len(d) && d[s.i] == '0':
		s.i++
	case digits() == 0:
		return errSyntax
	}
	if s.i < len(d) && d[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return errSyntax
		}
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if s.i < len(d) && (d[s.i] == '+' || d[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return errSyntax
		}
	}
	return nil
}

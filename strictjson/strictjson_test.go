package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type spec struct {
	Flavor   string            `json:"flavor"`
	Networks []network         `json:"networks"`
	Labels   map[string]string `json:"labels"`
}

type network struct {
	Network string `json:"network"`
}

type typeMeta struct {
	Kind string `json:"kind"`
}

type object struct {
	typeMeta
	Name string `json:"name"`
	Spec spec   `json:"spec"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		dup      string // path of the duplicate key, if any
		wantErr  bool
	}{
		{name: "plain", in: `{"name":"a","spec":{"flavor":"tiny"}}`},
		{name: "top-level duplicate", in: `{"name":"a","name":"b"}`, dup: "name"},
		{name: "nested duplicate", in: `{"spec":{"flavor":"tiny","labels":{},"flavor":"large"}}`, dup: "spec.flavor"},
		{name: "case-folded duplicate", in: `{"spec":{"flavor":"tiny","Flavor":"large"}}`, dup: "spec.flavor"},
		{name: "duplicate in array element", in: `{"spec":{"networks":[{"network":"a"},{"network":"b","network":"c"}]}}`, dup: "spec.networks[1].network"},
		{name: "duplicate map key", in: `{"spec":{"labels":{"a":"1","a":"2"}}}`, dup: "spec.labels.a"},
		{name: "map keys differing in case", in: `{"spec":{"labels":{"a":"1","A":"2"}}}`},
		{name: "embedded field twice", in: `{"kind":"Instance","Kind":"x","name":"a"}`, dup: "kind"},
		{name: "same key in sibling objects", in: `{"spec":{"networks":[{"network":"a"},{"network":"b"}]}}`},
		{name: "unknown field", in: `{"nme":"a"}`, wantErr: true},
		{name: "trailing data", in: `{"name":"a"} {}`, wantErr: true},
		{name: "malformed", in: `{"name":`, wantErr: true},
		{name: "empty", in: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o object
			err := Decode([]byte(tt.in), &o)
			var de *DuplicateKeyError
			switch {
			case tt.dup != "":
				if !errors.As(err, &de) || de.Path != tt.dup {
					t.Fatalf("Decode(%s) = %v, want duplicate key %q", tt.in, err, tt.dup)
				}
			case tt.wantErr:
				if err == nil {
					t.Fatalf("Decode(%s) = nil, want an error", tt.in)
				}
				if errors.As(err, &de) {
					t.Fatalf("Decode(%s) = %v, not a duplicate", tt.in, err)
				}
			default:
				if err != nil {
					t.Fatalf("Decode(%s) = %v", tt.in, err)
				}
			}
		})
	}
}

func TestTrailingData(t *testing.T) {
	var o object
	if err := Decode([]byte(`{} 1`), &o); !errors.Is(err, ErrTrailingData) {
		t.Fatalf("Decode = %v, want ErrTrailingData", err)
	}
}

func TestDeepNestingIsNotADuplicate(t *testing.T) {
	in := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	if err := CheckDuplicates([]byte(in)); err != nil {
		t.Fatalf("CheckDuplicates = %v", err)
	}
}

// FuzzDecode checks that Decode never panics, that whatever it accepts
// encoding/json accepts too with the same result, and that an input with
// a reported duplicate really repeats the key.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","spec":{"flavor":"tiny"}}`,
		`{"name":"a","name":"b"}`,
		`{"spec":{"networks":[{"network":"a"},{"network":"b","network":"c"}]}}`,
		`{"spec":{"labels":{"a":"1","A":"2"}}}`,
		`[[[[{}]]]]`, `"x"`, `{"name":"\u0061"}`, `{"spec":{"flavor":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got map[string]any
		err := Decode(data, &got)
		var de *DuplicateKeyError
		if errors.As(err, &de) {
			last := de.Path[strings.LastIndexAny(de.Path, ".]")+1:]
			if !strings.Contains(strings.ToLower(string(data)), strings.ToLower(last)) && !strings.Contains(string(data), `\u`) {
				t.Fatalf("duplicate %q reported for input without that key: %q", de.Path, data)
			}
			return
		}
		if err != nil {
			return
		}
		var want map[string]any
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Decode accepted %q that encoding/json refuses: %v", data, err)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if string(a) != string(b) {
			t.Fatalf("Decode(%q) = %s, encoding/json = %s", data, a, b)
		}
	})
}

// FuzzDecodeStruct checks that what Decode accepts into a struct,
// encoding/json decodes to the same value.
func FuzzDecodeStruct(f *testing.F) {
	f.Add([]byte(`{"kind":"x","name":"a","spec":{"flavor":"tiny","networks":[{"network":"n"}],"labels":{"a":"b"}}}`))
	f.Add([]byte(`{"NAME":"a","Spec":{"FLAVOR":"t"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want object
		if Decode(data, &got) != nil {
			return
		}
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Decode accepted %q that encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %+v, encoding/json = %+v", data, got, want)
		}
	})
}

func TestBadBase64NamesTheField(t *testing.T) {
	type exec struct {
		Command []string `json:"command"`
		Stdin   []byte   `json:"stdin"`
		Nested  struct {
			Data []byte `json:"data"`
		} `json:"nested"`
	}
	for _, tt := range []struct{ in, path string }{
		{`{"command":["cat"],"stdin":"not base64!"}`, "stdin"},
		{`{"stdin":"aGk=","nested":{"data":"%%"}}`, "nested.data"},
	} {
		var v exec
		err := Decode([]byte(tt.in), &v)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Path != tt.path {
			t.Errorf("Decode(%s) = %v, want an error on %s", tt.in, err, tt.path)
		}
	}
	var v exec
	if err := Decode([]byte(`{"stdin":"aGk="}`), &v); err != nil || string(v.Stdin) != "hi" {
		t.Errorf("good base64: %v %q", err, v.Stdin)
	}
}

// TestScanMatchesWalk checks the byte scan against the token walk it
// replaced: the same duplicate (and path) or none, on well-formed,
// malformed and mutated input.
func TestScanMatchesWalk(t *testing.T) {
	inputs := []string{
		``, ` `, `{`, `}`, `[`, `{}`, `[]`, `null`, `true`, `-0`, `01`, `1.`, `1e`, `-`, `1.5e+3`,
		`{"name":"a","name":"b"}`,
		`{"name":"a","n\u0061me":"b"}`,
		`{"name":"a","Name":"b"}`,
		`{"spec":{"flavor":"tiny","labels":{"a":"1","a":"2"}}}`,
		`{"spec":{"networks":[{"network":"a"},{"network":"b","NETWORK":"c"}]}}`,
		`{"spec":{"networks":[1,2,{"x":1,"x":2}]}}`,
		`{"kind":"a","Kind":"b"}`,
		`{"nme":"a","nme":"b"}`,
		`{"a":01,"a":2}`,
		`{"a":tru,"a":2}`,
		`{"a":"\x","a":2}`,
		`{"a":"\u12","a":2}`,
		"{\"a\":\"\x01\",\"a\":2}",
		`{"a" "b","a":2}`,
		`{"a":1 "a":2}`,
		`{"a":1,}`,
		`[1,]`,
		`{"a":[1,2],"b":{"c":null,"c":true}}`,
		`{"spec":{"labels":{"é":"1","é":"2"}}}`,
		`{"a":"b"} {"a":1,"a":2}`,
		`{"spec":{"flavor":"tiny"},"spec":{}}`,
		`{"spec":{"networks":[{"network":"a"}]},"name":"x","Name":"y"}`,
		`{"a":1e5,"a":-0.5E-3}`,
		`{"a":-,"a":1}`,
		strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000),
	}
	// Mutations of a realistic request: each byte dropped in turn, and
	// each replaced with a quote.
	base := `{"kind":"Instance","name":"web","spec":{"flavor":"tiny","networks":[{"network":"a"},{"network":"b"}],"labels":{"a":"1","b":"2"}},"name":"x"}`
	for i := range base {
		inputs = append(inputs, base[:i]+base[i+1:], base[:i]+`"`+base[i+1:])
	}
	types := []reflect.Type{nil, reflect.TypeOf(&object{}), reflect.TypeOf(map[string]any{})}
	for _, in := range inputs {
		for _, typ := range types {
			got, want := scanDuplicates([]byte(in), typ), walkDuplicates([]byte(in), typ)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%.80s as %v: scan %v, walk %v", in, typ, got, want)
			}
		}
	}
}

func BenchmarkCheckDuplicates(b *testing.B) {
	data := []byte(`{"kind":"Instance","metadata":{"name":"i-00001","labels":{"bench":"scale"}},"spec":{"image":"hollow-test","flavor":"tiny","tolerations":["ouro.dev/hollow"],"networks":[{"network":"scale"}]}}`)
	typ := reflect.TypeOf(&object{})
	for _, c := range []struct {
		name string
		fn   func([]byte, reflect.Type) error
	}{{"scan", scanDuplicates}, {"walk", walkDuplicates}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(data, typ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

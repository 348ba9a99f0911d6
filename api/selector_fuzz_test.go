package api

import (
	"reflect"
	"testing"
)

// FuzzParseSelector checks that any selector text either fails with an
// API error naming labelSelector, or parses to a selector whose text form
// parses back to the same selector.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"app=web", "app!=web,tier", "!canary", "a==b, c", "", ",", "=x", "a=b=c", "ouro.dev/zone=z1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Field != "labelSelector" {
				t.Fatalf("ParseSelector(%q) = %v, want an *Error on labelSelector", s, err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("ParseSelector(%q).String() = %q does not parse: %v", s, sel.String(), err)
		}
		if !reflect.DeepEqual(sel, again) {
			t.Fatalf("selector %q parses to %v, its text %q to %v", s, sel, sel.String(), again)
		}
	})
}

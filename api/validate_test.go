package api

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"web-1", true},
		{"a", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Web", false},
		{"-web", false},
		{"web-", false},
		{"web_1", false},
		{"../etc", false},
		{"a b", false},
	}
	for _, tt := range tests {
		err := ValidateName("metadata.name", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && (err.Field != "metadata.name" || err.Hint == "" || err.Status != 400) {
			t.Errorf("ValidateName(%q): error lacks field, hint or status: %+v", tt.name, err)
		}
	}
}

func TestValidateLabels(t *testing.T) {
	tests := []struct {
		labels map[string]string
		ok     bool
	}{
		{map[string]string{"app": "web", "ouro.dev/hollow": "true", "tier": ""}, true},
		{map[string]string{"a b": "c"}, false},
		{map[string]string{"app": "has space"}, false},
		{map[string]string{"app": strings.Repeat("v", 64)}, false},
		{map[string]string{"/app": "x"}, false},
	}
	for _, tt := range tests {
		if err := ValidateLabels("metadata.labels", tt.labels); (err == nil) != tt.ok {
			t.Errorf("ValidateLabels(%v) = %v, want ok=%v", tt.labels, err, tt.ok)
		}
	}
}

func TestValidateAnnotations(t *testing.T) {
	many := map[string]string{}
	for i := range MaxAnnotations + 1 {
		many[fmt.Sprint("k", i)] = ""
	}
	big := map[string]string{}
	for i := range MaxAnnotationsBytes/MaxAnnotationValueBytes + 1 {
		big[fmt.Sprint("k", i)] = strings.Repeat("v", MaxAnnotationValueBytes)
	}
	tests := []struct {
		name        string
		annotations map[string]string
		field       string // of the error; "" when valid
	}{
		{"text", map[string]string{"tag.ec2.ouro.dev/Name": "My web server: ünïcode", "note": ""}, ""},
		{"none", nil, ""},
		{"empty key", map[string]string{"": "x"}, "metadata.annotations."},
		{"control in key", map[string]string{"a\nb": "x"}, "metadata.annotations.a\nb"},
		{"long key", map[string]string{strings.Repeat("k", MaxAnnotationKeyBytes+1): "x"}, "metadata.annotations." + strings.Repeat("k", 80) + "…"},
		{"long value", map[string]string{"k": strings.Repeat("v", MaxAnnotationValueBytes+1)}, "metadata.annotations.k"},
		{"bad utf-8", map[string]string{"k": "\xff"}, "metadata.annotations.k"},
		{"too many", many, "metadata.annotations"},
		{"too big", big, "metadata.annotations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAnnotations("metadata.annotations", tt.annotations)
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.field != "" && err == nil:
				t.Error("accepted")
			case tt.field != "" && err.Field != tt.field:
				t.Errorf("error field %q, want %q (%v)", err.Field, tt.field, err)
			}
		})
	}
}

func TestSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	tests := []struct {
		sel   string
		match bool
	}{
		{"", true},
		{"app=web", true},
		{"app==web", true},
		{"app=db", false},
		{"app!=db", true},
		{"app!=web", false},
		{"tier", true},
		{"!tier", false},
		{"!missing", true},
		{"app=web,tier=front", true},
		{"app=web,tier=back", false},
	}
	for _, tt := range tests {
		s, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", tt.sel, err)
		}
		if got := s.Matches(labels); got != tt.match {
			t.Errorf("%q matches %v = %v, want %v", tt.sel, labels, got, tt.match)
		}
		if again, err := ParseSelector(s.String()); err != nil || again.String() != s.String() {
			t.Errorf("%q does not round-trip: %q, %v", tt.sel, s.String(), err)
		}
	}
	for _, bad := range []string{"===", "a=b,,c", "a b=c"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	conds := SetCondition(nil, Condition{Type: "Ready", Status: true}, t0)
	conds = SetCondition(conds, Condition{Type: "Ready", Status: true, Reason: "Still"}, t1)
	if c := FindCondition(conds, "Ready"); c == nil || !c.LastTransitionTime.Equal(t0) || c.Reason != "Still" {
		t.Fatalf("same status must keep the transition time: %+v", c)
	}
	conds = SetCondition(conds, Condition{Type: "Ready", Status: false}, t1)
	if c := FindCondition(conds, "Ready"); !c.LastTransitionTime.Equal(t1) || len(conds) != 1 {
		t.Fatalf("a flip must set the transition time: %+v", conds)
	}
}

func TestResourcesFit(t *testing.T) {
	free := Resources{VCPUs: 2, MemoryMiB: 512, DiskGiB: 10}
	if !(Resources{1, 512, 10}).Fits(free) || (Resources{3, 1, 1}).Fits(free) || (Resources{1, 513, 1}).Fits(free) {
		t.Fatal("Fits is wrong")
	}
	if got := free.Sub(Resources{1, 12, 0}).Add(Resources{1, 12, 0}); got != free {
		t.Fatalf("Add/Sub: %+v", got)
	}
}

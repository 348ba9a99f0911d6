package ec2

import (
	"testing"
)

func TestCheckParams(t *testing.T) {
	patterns := []string{"InstanceId.N", "Filter.N.Name", "Filter.N.Value.N", "DryRun"}
	tests := []struct {
		key  string
		code string
	}{
		{"InstanceId.1", ""},
		{"InstanceId.1000", ""},
		{"Filter.3.Value.7", ""},
		{"DryRun", ""},
		{"InstanceId.0", CodeInvalidParameterValue},
		{"InstanceId.1001", CodeInvalidParameterValue},
		{"Filter.999999.Name", CodeInvalidParameterValue},
		{"Filter.1.Value.99999999999999999999", CodeInvalidParameterValue},
		{"InstanceId.x", CodeUnknownParameter},
		{"InstanceId", CodeUnknownParameter},
		{"Filter.1.Nam", CodeUnknownParameter},
		{"Bogus", CodeUnknownParameter},
	}
	for _, tt := range tests {
		err := Params{tt.key: "v"}.check(patterns)
		got := ""
		if e, ok := err.(*Error); ok {
			got = e.Code
		} else if err != nil {
			got = err.Error()
		}
		if got != tt.code {
			t.Errorf("check(%q) = %q, want %q", tt.key, got, tt.code)
		}
	}
}

func TestStructsAndLists(t *testing.T) {
	p := Params{"Filter.2.Name": "b", "Filter.10.Name": "c", "Filter.1.Name": "a", "Filter.1.Value.2": "y", "Filter.1.Value.1": "x"}
	fs := p.Structs("Filter")
	if len(fs) != 3 || fs[0]["Name"] != "a" || fs[1]["Name"] != "b" || fs[2]["Name"] != "c" {
		t.Fatalf("Structs = %v", fs)
	}
	if vs := fs[0].List("Value"); len(vs) != 2 || vs[0] != "x" || vs[1] != "y" {
		t.Fatalf("List = %v", vs)
	}
}

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"web", "web", true}, {"w*", "web", true}, {"*b", "web", true}, {"w?b", "web", true},
		{"*", "", true}, {"w?", "web", false}, {"x*", "web", false}, {"*e*", "web", true}, {"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false}, {"[a]", "a", false}, {"10.0.*", "10.0.0.1", true},
	} {
		if got := glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
}

func TestPaginate(t *testing.T) {
	items := []int{1, 2, 3, 4, 5, 6, 7}
	page, next, err := paginate(Params{"MaxResults": "5"}, items)
	if err != nil || len(page) != 5 || next == "" {
		t.Fatalf("first page %v %q %v", page, next, err)
	}
	page, next, err = paginate(Params{"MaxResults": "5", "NextToken": next}, items)
	if err != nil || len(page) != 2 || page[0] != 6 || next != "" {
		t.Fatalf("second page %v %q %v", page, next, err)
	}
	for _, bad := range []Params{{"MaxResults": "4"}, {"MaxResults": "1001"}, {"NextToken": "!!"}, {"NextToken": "eHl6"}} {
		if _, _, err := paginate(bad, items); err == nil {
			t.Errorf("paginate(%v) accepted", bad)
		}
	}
}

func FuzzForm(f *testing.F) {
	f.Add("Action=DescribeInstances&Filter.1.Name=tag:Name&Filter.1.Value.1=w*")
	f.Add("InstanceId.999999=1&%zz")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := parseForm(body)
		if err != nil {
			return
		}
		if p.check(describeInstancesParams) == nil {
			p.Structs("Filter")
			p.List("InstanceId")
			paginate(p, []int{1, 2, 3})
		}
	})
}

var describeInstancesParams = params(dryRun, filters, paging, []string{"InstanceId.N"})

package stack

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		sets map[string]string
		want []string
	}{
		{"bad-cidr.yaml", nil, []string{`bad-cidr.yaml:5: spec.cidr: "10.0.0.0/33" is not an IPv4 prefix`}},
		{"unknown-field.yaml", nil, []string{`unknown-field.yaml:10: spec.rules[0].colour: unknown field "colour"`}},
		{"unknown-kind.yaml", nil, []string{`unknown-kind.yaml:1: kind: unknown kind "Database"`}},
		{"duplicate.yaml", nil, []string{`duplicate.yaml:9: metadata.name: Network web is already defined at testdata/bad/duplicate.yaml:1`}},
		{"dangling.yaml", nil, []string{`dangling.yaml:7: spec.userData: ${Instance/db.status.interfaces[0].ip} refers to Instance/db, which is not in the stack`}},
		{"cycle.yaml", nil, []string{`cycle.yaml:1: dependency cycle: Instance/a -> Instance/b -> Instance/a`}},
		{"unknown-param.yaml", nil, []string{`unknown-param.yaml:12: spec.cidr: unknown parameter "cdir" in ${param.cdir}: the stack declares cidr`}},
		{"unknown-param.yaml", map[string]string{"size": "3"}, []string{
			`--set: size: unknown parameter: the stack declares cidr`,
			`unknown-param.yaml:12: spec.cidr: unknown parameter "cdir"`}},
		{"missing-param.yaml", nil, []string{`missing-param.yaml:6: spec.parameters.cidr: parameter cidr is required`}},
		{"ref-in-number.yaml", nil, []string{`ref-in-number.yaml:5: spec.count: references are allowed in string fields only, not in a number field`}},
		{"bad-annotations.yaml", nil, []string{`bad-annotations.yaml:4: metadata.annotations: annotations are a map of key to value`}},
		{"syntax.yaml", nil, []string{`syntax.yaml:3: did not find expected ',' or '}'`}},
		{"bad-name.yaml", nil, []string{
			`bad-name.yaml:3: metadata.name: name "My_Key" is not valid`,
			`bad-name.yaml:5: spec.publicKey: not an OpenSSH public key`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, _, err := Load([]string{filepath.Join("testdata", "bad", tt.file)}, nil, tt.sets)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load = %v, want an ErrorList", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Load errors:\n%v\nwant %d lines", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoadRendersParameters(t *testing.T) {
	tests := []struct {
		name      string
		values    []string
		sets      map[string]string
		wantCount string
		wantCIDR  string
	}{
		{"defaults", nil, nil, "3", "10.20.0.0/24"},
		{"values file", []string{"testdata/values.yaml"}, nil, "5", "10.30.0.0/24"},
		{"set wins", []string{"testdata/values.yaml"}, map[string]string{"count": "7"}, "7", "10.30.0.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, spec, err := Load([]string{"testdata/web.yaml"}, tt.values, tt.sets)
			if err != nil {
				t.Fatal(err)
			}
			if name != "web" {
				t.Errorf("name = %q, want web", name)
			}
			if got := spec.Parameters["count"]; got != tt.wantCount {
				t.Errorf("parameters.count = %q, want %q", got, tt.wantCount)
			}
			net := resource(t, spec, "Network", "web")
			if got := jsonField(t, net.Spec, "cidr"); got != `"`+tt.wantCIDR+`"` {
				t.Errorf("network cidr = %s, want %q", got, tt.wantCIDR)
			}
			group := resource(t, spec, "InstanceGroup", "web")
			if got := jsonField(t, group.Spec, "count"); got != tt.wantCount {
				t.Errorf("group count = %s, want the number %s", got, tt.wantCount)
			}
			if net.Source != "testdata/web.yaml:12" {
				t.Errorf("network source = %q", net.Source)
			}
			if spec.Outputs["url"] != "http://${LoadBalancer/web.status.floatingIP}/" {
				t.Errorf("outputs = %v", spec.Outputs)
			}
		})
	}
}

func TestLoadTypesWholeParameters(t *testing.T) {
	_, spec, err := Load([]string{"testdata/typed.yaml"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := resource(t, spec, "InstanceGroup", "web")
	want := `{"count":2,"template":{"command":["echo","hello x2"],"flavor":"small","image":"alpine","userData":"2"}}`
	if string(g.Spec) != want {
		t.Errorf("spec = %s\nwant   %s", g.Spec, want)
	}
	if g.Labels["replicas"] != "2" {
		t.Errorf("labels = %v", g.Labels)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yml", "kind: Network\nmetadata: {name: b}\nspec: {cidr: 10.1.0.0/24}\n")
	write("a.yaml", "kind: Network\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/24}\n---\n")
	write("notes.txt", "not a stack")
	name, spec, err := Load([]string{dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" || len(spec.Resources) != 2 || spec.Resources[0].Name != "a" || spec.Resources[1].Name != "b" {
		t.Errorf("Load = %q %+v", name, spec.Resources)
	}
}

// TestExamplesLoad loads every stack of examples/ (each directory's
// stack.yaml: ouroboros/ also holds an inventory) with its defaults and
// placeholder values for required parameters.
func TestExamplesLoad(t *testing.T) {
	dirs, err := filepath.Glob("../examples/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, spec, err := Load([]string{filepath.Join(dir, "stack.yaml")}, nil, exampleSets[filepath.Base(dir)])
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.Resources) == 0 {
				t.Error("no resources")
			}
		})
	}
	if n == 0 {
		t.Fatal("no examples found")
	}
}

// exampleSets are values for the examples' required parameters.
var exampleSets = map[string]map[string]string{
	"web":       {"publicKey": exampleKey},
	"ouroboros": {"publicKey": exampleKey},
	"cloud": {"publicKey": exampleKey, "imageURL": "https://cloud.example/debian-12-genericcloud-amd64.qcow2",
		"imageSHA256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
}

const exampleKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAwEp/USy4EdFbQzVsIPwylQzYyyMs2rKbvLpDYmI+DY example"

func resource(t *testing.T, spec api.StackSpec, kind, name string) api.StackResource {
	t.Helper()
	for _, r := range spec.Resources {
		if r.Kind == kind && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s/%s in %+v", kind, name, spec.Resources)
	return api.StackResource{}
}

func jsonField(t *testing.T, raw json.RawMessage, field string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return string(m[field])
}

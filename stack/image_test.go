package stack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestLoadImageSources(t *testing.T) {
	_, spec, err := Load([]string{"testdata/image.yaml"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := ImageSourceOf(resource(t, spec, "Image", "app"))
	if err != nil || app == nil || app.File != "testdata/images/app.tar" {
		t.Errorf("app source = %+v, %v; want the file relative to the stack file", app, err)
	}
	deb, err := ImageSourceOf(resource(t, spec, "Image", "debian"))
	if err != nil || deb == nil || deb.URL != "https://example.com/debian.qcow2" || deb.Format != "qcow2" {
		t.Errorf("debian source = %+v, %v", deb, err)
	}
	if got := string(WithoutSource(resource(t, spec, "Image", "app").Spec)); got != `{"description":"the app"}` {
		t.Errorf("WithoutSource = %s", got)
	}
	// The server never accepts a source: the CLI replaces it.
	if err := Check(spec, nil); err == nil || !strings.Contains(err.Error(), "spec.source: an image source is imported by the CLI") {
		t.Errorf("Check = %v", err)
	}
}

func TestImageSourceErrors(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct{ source, want string }{
		{`{"file":"a","url":"https://x/a","sha256":"` + sum + `"}`, "give exactly one of url and file"},
		{`{"url":"ftp://x/a","sha256":"` + sum + `"}`, "is not an http(s) URL"},
		{`{"file":"a"}`, "spec.source.sha256"},
		{`{"file":"a","sha256":"` + sum + `","format":"vhd"}`, "spec.source.format"},
		{`{"file":"a","sha256":"` + sum + `","colour":"red"}`, "unknown field"},
	}
	for _, tt := range tests {
		r := api.StackResource{Kind: "Image", Name: "x", Spec: json.RawMessage(`{"source":` + tt.source + `}`)}
		if _, err := ImageSourceOf(r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ImageSourceOf(%s) = %v, want %q", tt.source, err, tt.want)
		}
	}
	_, _, err := Load([]string{"testdata/bad/image-source.yaml"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "testdata/bad/image-source.yaml:5: spec.source: give exactly one of url and file") {
		t.Errorf("Load = %v", err)
	}
}

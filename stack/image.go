package stack

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/strictjson"
)

// ImageSource is what a stack file may write as an Image's spec.source in
// place of the image's blobs: a URL or a local file and its SHA-256. The
// CLI imports it (checking the SHA-256), uploads the blobs and replaces
// the spec by the image spec the API expects before sending the stack;
// the server never sees a source object (Check refuses one).
type ImageSource struct {
	// URL is an http(s) URL to download; File a local path, relative to
	// the stack file's directory. Exactly one is set.
	URL  string `json:"url,omitempty"`
	File string `json:"file,omitempty"`
	// SHA256 is the expected SHA-256 of the download or file (hex,
	// optionally "sha256:" first).
	SHA256 string `json:"sha256"`
	// Format is "" to detect it, or oci, qcow2 or raw.
	Format string `json:"format,omitempty"`
}

var sha256RE = regexp.MustCompile(`^(sha256:)?[0-9a-fA-F]{64}$`)

// ImageSourceOf returns the source object of an Image resource, or nil
// when its spec.source is absent or a plain string.
func ImageSourceOf(r api.StackResource) (*ImageSource, error) {
	if r.Kind != api.ImageKind.Name {
		return nil, nil
	}
	var spec struct {
		Source json.RawMessage `json:"source"`
	}
	if err := json.Unmarshal(r.Spec, &spec); err != nil || len(spec.Source) == 0 || spec.Source[0] != '{' {
		return nil, nil
	}
	var src ImageSource
	if err := strictjson.Decode(spec.Source, &src); err != nil {
		return nil, fmt.Errorf("spec.source: %w", err)
	}
	switch {
	case (src.URL == "") == (src.File == ""):
		return nil, fmt.Errorf("spec.source: give exactly one of url and file")
	case src.URL != "" && !strings.HasPrefix(src.URL, "http://") && !strings.HasPrefix(src.URL, "https://"):
		return nil, fmt.Errorf("spec.source.url: %q is not an http(s) URL", src.URL)
	case !sha256RE.MatchString(src.SHA256):
		return nil, fmt.Errorf("spec.source.sha256: give the SHA-256 of the image (64 hex digits)")
	}
	switch src.Format {
	case "", api.FormatOCI, api.FormatQCOW2, api.FormatRaw:
	default:
		return nil, fmt.Errorf("spec.source.format: %q is not oci, qcow2 or raw", src.Format)
	}
	return &src, nil
}

// WithoutSource returns an Image spec without its source field.
func WithoutSource(raw json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	delete(m, "source")
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

// relocateSource makes a relative source file of an Image document
// relative to the current directory instead of the stack file's.
func relocateSource(r *api.StackResource, file string) {
	var m map[string]any
	if r.Kind != api.ImageKind.Name || json.Unmarshal(r.Spec, &m) != nil {
		return
	}
	src, ok := m["source"].(map[string]any)
	if !ok {
		return
	}
	f, ok := src["file"].(string)
	if !ok || f == "" || filepath.IsAbs(f) {
		return
	}
	src["file"] = filepath.Join(filepath.Dir(file), f)
	if b, err := json.Marshal(m); err == nil {
		r.Spec = b
	}
}

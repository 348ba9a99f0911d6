package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/imageimport"
	"github.com/ouroboros-cloud/ouro/stack"
)

// images are the images of a stack's files that come from a source (URL
// or file): read and checked, waiting to be uploaded.
type images struct {
	work  string
	found []*imageimport.Image
}

// importSources reads every Image source of spec into work (downloading
// URLs, checking each SHA-256) and replaces the resource's spec by the
// image spec the API expects, keeping the file's other fields
// (description, public, ...) over it.
func importSources(ctx context.Context, spec *api.StackSpec, work string, log io.Writer) (*images, error) {
	out := &images{work: work}
	for i := range spec.Resources {
		r := &spec.Resources[i]
		src, err := stack.ImageSourceOf(*r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Source, err)
		}
		if src == nil {
			continue
		}
		from := src.URL
		if from == "" {
			from = src.File
		}
		fmt.Fprintf(log, "Reading image %s from %s\n", r.Name, from)
		img, err := imageimport.LoadSource(ctx, from, work, imageimport.Options{SHA256: src.SHA256, Format: src.Format})
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", r.Source, r.Name, err)
		}
		merged, err := mergeSpec(img.Spec(imageimport.UploadOptions{}), stack.WithoutSource(r.Spec))
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", r.Source, r.Name, err)
		}
		r.Spec = merged
		out.found = append(out.found, img)
	}
	return out, nil
}

// mergeSpec returns base with the fields of over written over it.
func mergeSpec(base api.ImageSpec, over json.RawMessage) (json.RawMessage, error) {
	b, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(over, &o); err != nil {
		return nil, err
	}
	for k, v := range o {
		m[k] = v
	}
	return json.Marshal(m)
}

// upload sends the blobs of the images to the server.
func (im *images) upload(ctx context.Context, c *client.Client) error {
	for _, img := range im.found {
		if err := imageimport.UploadBlobs(ctx, c, img, nil); err != nil {
			return fmt.Errorf("upload image %s: %w", img.Source, err)
		}
	}
	return nil
}

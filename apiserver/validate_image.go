package apiserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Image bounds.
const maxLayers = 127

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

var architectures = map[string]bool{"": true, "amd64": true, "arm64": true, "arm": true, "386": true, "riscv64": true, "ppc64le": true, "s390x": true}

// validateImageCreate checks an image's content against the blob store and
// marks it Ready. The caller holds blobMu for reading.
func (s *Server) validateImageCreate(img *api.Image) error {
	spec := &img.Spec
	if spec.Format != api.FormatOCI {
		return api.Invalid("spec.format", `use "oci"`, "format %q is not supported", spec.Format)
	}
	if !architectures[spec.Architecture] {
		return api.Invalid("spec.architecture", "use a Go architecture name such as amd64 or arm64, or leave it out", "architecture %q is not known", spec.Architecture)
	}
	if err := validateDescription("spec.description", spec.Description); err != nil {
		return err
	}
	if len(spec.Source) > 2048 {
		return api.Invalid("spec.source", "use at most 2048 bytes", "source is too long")
	}
	if len(spec.Layers) < 1 || len(spec.Layers) > maxLayers {
		return api.Invalid("spec.layers", fmt.Sprintf("give 1 to %d layers", maxLayers), "%d layers given", len(spec.Layers))
	}
	if err := validateArgs("spec.config.entrypoint", spec.Config.Entrypoint); err != nil {
		return err
	}
	if err := validateArgs("spec.config.cmd", spec.Config.Cmd); err != nil {
		return err
	}
	if err := validateEnv("spec.config.env", spec.Config.Env); err != nil {
		return err
	}
	if len(spec.Config.WorkingDir) > maxArgBytes || len(spec.Config.User) > 256 {
		return api.Invalid("spec.config", "use a shorter workingDir or user", "value too long")
	}
	var total int64
	now := time.Now()
	for i, l := range spec.Layers {
		field := fmt.Sprintf("spec.layers[%d]", i)
		m := digestRE.FindStringSubmatch(l.Digest)
		if m == nil {
			return api.Invalid(field+".digest", "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(l.Digest, 80))
		}
		switch l.MediaType {
		case api.MediaTypeLayerGzip, api.MediaTypeLayerTar:
		default:
			return api.Invalid(field+".mediaType", "use "+api.MediaTypeLayerGzip+" or "+api.MediaTypeLayerTar, "media type %q is not supported", l.MediaType)
		}
		path := s.blobPath(m[1])
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return api.Invalid(field+".digest", "upload it first with PUT /v1/blobs/"+l.Digest, "blob %s was not uploaded", l.Digest)
		}
		if err != nil {
			return fmt.Errorf("stat blob: %w", err)
		}
		if st.Size() != l.Size {
			return api.Invalid(field+".size", fmt.Sprintf("the blob is %d bytes", st.Size()), "size %d does not match the blob", l.Size)
		}
		// A fresh time keeps the sweep's age rule from taking a blob that
		// an image was just made of.
		os.Chtimes(path, now, now)
		total += l.Size
	}
	img.Status = api.ImageStatus{Phase: "Ready", Driver: "container", Size: total}
	return nil
}

func validateImageUpdate(old, img *api.Image) error {
	o, n := &old.Spec, &img.Spec
	switch {
	case n.Format != o.Format:
		return immutable("spec.format")
	case n.Architecture != o.Architecture:
		return immutable("spec.architecture")
	case !jsonEqual(n.Layers, o.Layers):
		return immutable("spec.layers")
	case !jsonEqual(n.Config, o.Config):
		return immutable("spec.config")
	}
	if len(n.Source) > 2048 {
		return api.Invalid("spec.source", "use at most 2048 bytes", "source is too long")
	}
	return validateDescription("spec.description", n.Description)
}

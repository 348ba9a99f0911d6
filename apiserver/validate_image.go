package apiserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
)

// Image bounds.
const (
	maxLayers = 127
	// maxCmdlineBytes bounds a kernel command line; Linux takes at most
	// 2048 bytes on x86 and 4096 elsewhere.
	maxCmdlineBytes = 4096
)

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

var architectures = map[string]bool{"": true, "amd64": true, "arm64": true, "arm": true, "386": true, "riscv64": true, "ppc64le": true, "s390x": true}

// diskMediaTypes is the media type of spec.disk for each disk format.
var diskMediaTypes = map[string]string{
	api.FormatQCOW2: api.MediaTypeDiskQCOW2,
	api.FormatRaw:   api.MediaTypeDiskRaw,
}

// validateImageCreate checks an image's content against the blob store and
// marks it Ready. The caller holds the blob store (blobstore.Store.Hold).
//
// An "oci" image is made of layers and a config. A "qcow2" or "raw" image
// is a disk, optionally booted with a kernel, initrd and command line when
// it has no boot loader; a "kernel" image is a kernel with an optional
// initrd and command line. A blob whose media type is left out gets the
// one its field implies.
func (s *Server) validateImageCreate(img *api.Image) error {
	spec := &img.Spec
	driver := api.DriverForFormat(spec.Format)
	if driver == "" {
		return api.Invalid("spec.format", `use "oci" for containers, "qcow2" or "raw" for a disk image, or "kernel" for a kernel booted directly`, "format %q is not supported", spec.Format)
	}
	if !architectures[spec.Architecture] {
		return api.Invalid("spec.architecture", "use a Go architecture name such as amd64 or arm64, or leave it out", "architecture %q is not known", spec.Architecture)
	}
	if err := admission.ValidateDescription("spec.description", spec.Description); err != nil {
		return err
	}
	if len(spec.Source) > 2048 {
		return api.Invalid("spec.source", "use at most 2048 bytes", "source is too long")
	}
	var err error
	switch spec.Format {
	case api.FormatOCI:
		err = validateOCISpec(spec)
	default:
		err = validateVMSpec(spec)
	}
	if err != nil {
		return err
	}
	var total int64
	now := time.Now()
	for _, b := range imageBlobFields(spec) {
		if err := s.checkBlob(b.field, b.blob, now); err != nil {
			return err
		}
		total += b.blob.Size
	}
	img.Status = api.ImageStatus{Phase: "Ready", Driver: driver, Size: total}
	return nil
}

// validateOCISpec checks the layers and config of a container image.
func validateOCISpec(spec *api.ImageSpec) error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"spec.disk", spec.Disk != nil}, {"spec.kernel", spec.Kernel != nil}, {"spec.initrd", spec.Initrd != nil}, {"spec.cmdline", spec.Cmdline != ""}} {
		if f.set {
			return api.Invalid(f.name, `leave it out: only "qcow2", "raw" and "kernel" images boot a virtual machine`, "an oci image has no %s", strings.TrimPrefix(f.name, "spec."))
		}
	}
	if len(spec.Layers) < 1 || len(spec.Layers) > maxLayers {
		return api.Invalid("spec.layers", fmt.Sprintf("give 1 to %d layers", maxLayers), "%d layers given", len(spec.Layers))
	}
	for i, l := range spec.Layers {
		switch l.MediaType {
		case api.MediaTypeLayerGzip, api.MediaTypeLayerTar:
		default:
			return api.Invalid(fmt.Sprintf("spec.layers[%d].mediaType", i), "use "+api.MediaTypeLayerGzip+" or "+api.MediaTypeLayerTar, "media type %q is not supported", l.MediaType)
		}
	}
	if err := admission.ValidateArgs("spec.config.entrypoint", spec.Config.Entrypoint); err != nil {
		return err
	}
	if err := admission.ValidateArgs("spec.config.cmd", spec.Config.Cmd); err != nil {
		return err
	}
	if err := admission.ValidateEnv("spec.config.env", spec.Config.Env); err != nil {
		return err
	}
	if len(spec.Config.WorkingDir) > admission.MaxArgBytes || len(spec.Config.User) > 256 {
		return api.Invalid("spec.config", "use a shorter workingDir or user", "value too long")
	}
	return nil
}

// validateVMSpec checks the blobs and command line of a virtual machine
// image and fills in left-out media types.
func validateVMSpec(spec *api.ImageSpec) error {
	format := spec.Format
	if len(spec.Layers) > 0 {
		return api.Invalid("spec.layers", "leave it out: layers make container (oci) images", "a %s image has no layers", format)
	}
	if !jsonEqual(spec.Config, api.ImageConfig{}) {
		return api.Invalid("spec.config", "leave it out: a virtual machine runs what its disk or kernel starts", "a %s image has no config", format)
	}
	if format == api.FormatKernel {
		if spec.Disk != nil {
			return api.Invalid("spec.disk", `leave it out, or use format "qcow2" or "raw" for a disk booted with a kernel`, "a kernel image has no disk")
		}
		if spec.Kernel == nil {
			return api.Invalid("spec.kernel", "give the kernel blob (digest, size)", "a kernel image needs a kernel")
		}
	} else if spec.Disk == nil {
		return api.Invalid("spec.disk", "give the disk blob (digest, size)", "a %s image needs a disk", format)
	}
	if spec.Kernel == nil {
		if spec.Initrd != nil {
			return api.Invalid("spec.initrd", "give spec.kernel too, or leave the initrd out", "an initrd needs a kernel")
		}
		if spec.Cmdline != "" {
			return api.Invalid("spec.cmdline", "give spec.kernel too, or leave the command line out", "a command line needs a kernel")
		}
	}
	if err := validateCmdline("spec.cmdline", spec.Cmdline); err != nil {
		return err
	}
	for _, b := range []struct {
		field string
		blob  *api.Blob
		want  string
	}{
		{"spec.disk", spec.Disk, diskMediaTypes[format]},
		{"spec.kernel", spec.Kernel, api.MediaTypeKernel},
		{"spec.initrd", spec.Initrd, api.MediaTypeInitrd},
	} {
		switch {
		case b.blob == nil:
		case b.blob.MediaType == "":
			b.blob.MediaType = b.want
		case b.blob.MediaType != b.want:
			return api.Invalid(b.field+".mediaType", "use "+b.want+" or leave it out", "media type %q does not fit a %s image's %s", b.blob.MediaType, format, strings.TrimPrefix(b.field, "spec."))
		}
	}
	return nil
}

// validateCmdline accepts a kernel command line of printable ASCII.
func validateCmdline(field, c string) error {
	if len(c) > maxCmdlineBytes {
		return api.Invalid(field, fmt.Sprintf("use at most %d bytes", maxCmdlineBytes), "command line is %d bytes", len(c))
	}
	for i := 0; i < len(c); i++ {
		if c[i] < ' ' || c[i] > '~' {
			return api.Invalid(field, "use printable ASCII; separate arguments with spaces", "byte %d of the command line is %q", i, c[i])
		}
	}
	return nil
}

type blobField struct {
	field string
	blob  *api.Blob
}

// imageBlobFields names every blob of an image by its field.
func imageBlobFields(spec *api.ImageSpec) []blobField {
	var out []blobField
	for i := range spec.Layers {
		out = append(out, blobField{fmt.Sprintf("spec.layers[%d]", i), &spec.Layers[i]})
	}
	for _, b := range []blobField{{"spec.disk", spec.Disk}, {"spec.kernel", spec.Kernel}, {"spec.initrd", spec.Initrd}} {
		if b.blob != nil {
			out = append(out, b)
		}
	}
	return out
}

// checkBlob makes sure a blob was uploaded with the stated size and
// freshens its time, so the sweep's age rule does not take a blob an image
// was just made of.
func (s *Server) checkBlob(field string, b *api.Blob, now time.Time) error {
	m := digestRE.FindStringSubmatch(b.Digest)
	if m == nil {
		return api.Invalid(field+".digest", "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(b.Digest, 80))
	}
	path := s.blobPath(m[1])
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return api.Invalid(field+".digest", "upload it first with PUT /v1/blobs/"+b.Digest, "blob %s was not uploaded", b.Digest)
	}
	if err != nil {
		return fmt.Errorf("stat blob: %w", err)
	}
	if st.Size() != b.Size {
		return api.Invalid(field+".size", fmt.Sprintf("the blob is %d bytes", st.Size()), "size %d does not match the blob", b.Size)
	}
	os.Chtimes(path, now, now)
	return nil
}

func validateImageUpdate(old, img *api.Image) error {
	o, n := &old.Spec, &img.Spec
	switch {
	case n.Format != o.Format:
		return admission.Immutable("spec.format")
	case n.Architecture != o.Architecture:
		return admission.Immutable("spec.architecture")
	case !jsonEqual(n.Layers, o.Layers):
		return admission.Immutable("spec.layers")
	case !jsonEqual(n.Config, o.Config):
		return admission.Immutable("spec.config")
	case !jsonEqual(n.Disk, o.Disk):
		return admission.Immutable("spec.disk")
	case !jsonEqual(n.Kernel, o.Kernel):
		return admission.Immutable("spec.kernel")
	case !jsonEqual(n.Initrd, o.Initrd):
		return admission.Immutable("spec.initrd")
	case n.Cmdline != o.Cmdline:
		return admission.Immutable("spec.cmdline")
	}
	if len(n.Source) > 2048 {
		return api.Invalid("spec.source", "use at most 2048 bytes", "source is too long")
	}
	return admission.ValidateDescription("spec.description", n.Description)
}

package admission

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Image bounds.
const (
	maxLayers = 127
	// MaxCmdlineBytes bounds a kernel command line; Linux takes at most
	// 2048 bytes on x86 and 4096 elsewhere.
	MaxCmdlineBytes = 4096
	// maxSourceBytes bounds where an image says it came from.
	maxSourceBytes = 2048
)

// Blobs is what image admission asks of the blobs an image is made of:
// whether the identity asking may name a blob, whether it was uploaded
// and with what size. The API server answers it from its blob store
// (package blobstore) and its blob access index (package blobaccess).
type Blobs interface {
	// CanRefer reports whether id may make an image of the blob with
	// the given hex digest.
	CanRefer(ctx context.Context, id *auth.Identity, hexDigest string) (bool, error)
	// Stat returns the file information of the blob with the given hex
	// digest; a missing blob is an error matching fs.ErrNotExist.
	Stat(hexDigest string) (fs.FileInfo, error)
	// Touch marks the blob as just used, so that it is not swept as
	// unreferenced before the image that names it is stored.
	Touch(hexDigest string, t time.Time)
}

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

// BlobDigest returns the hex part of a blob digest, which is written
// sha256:<64 lower-case hex digits>, or an error naming field.
func BlobDigest(field, digest string) (string, error) {
	m := digestRE.FindStringSubmatch(digest)
	if m == nil {
		return "", api.Invalid(field, "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(digest, 80))
	}
	return m[1], nil
}

var architectures = map[string]bool{"amd64": true, "arm64": true, "arm": true, "386": true, "riscv64": true, "ppc64le": true, "s390x": true}

// KnownArchitecture reports whether arch is the Go name of an
// architecture ouro runs on, such as amd64 or arm64.
func KnownArchitecture(arch string) bool { return architectures[arch] }

// diskMediaTypes is the media type of spec.disk for each disk format.
var diskMediaTypes = map[string]string{
	api.FormatQCOW2: api.MediaTypeDiskQCOW2,
	api.FormatRaw:   api.MediaTypeDiskRaw,
}

// ValidateImageCreate checks an image's content against blobs and marks
// it Ready. The caller keeps the blobs from being swept until the image is
// stored (blobstore.Store.Hold). Only cluster admins publish images
// (spec.public); id must otherwise be allowed to refer to every blob, and
// a blob it may not refer to is refused exactly as a missing one.
//
// An "oci" image is made of layers and a config. A "qcow2" or "raw" image
// is a disk, optionally booted with a kernel, initrd and command line when
// it has no boot loader; a "kernel" image is a kernel with an optional
// initrd and command line. A blob whose media type is left out gets the
// one its field implies.
func ValidateImageCreate(ctx context.Context, blobs Blobs, id *auth.Identity, img *api.Image) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	spec := &img.Spec
	if spec.Public && !id.ClusterAdmin {
		return publishForbidden(id)
	}
	driver := api.DriverForFormat(spec.Format)
	if driver == "" {
		return api.Invalid("spec.format", `use "oci" for containers, "qcow2" or "raw" for a disk image, or "kernel" for a kernel booted directly`, "format %q is not supported", spec.Format)
	}
	if spec.Architecture != "" && !KnownArchitecture(spec.Architecture) {
		return api.Invalid("spec.architecture", "use a Go architecture name such as amd64 or arm64, or leave it out", "architecture %q is not known", spec.Architecture)
	}
	if err := ValidateDescription("spec.description", spec.Description); err != nil {
		return err
	}
	if err := validateSource(spec.Source); err != nil {
		return err
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
		if err := checkBlob(ctx, blobs, id, b.field, b.blob, now); err != nil {
			return err
		}
		total += b.blob.Size
	}
	img.Status = api.ImageStatus{Phase: "Ready", Driver: driver, Size: total}
	return nil
}

// ValidateImageUpdate refuses changing an image's content, and making it
// public unless id is a cluster admin.
func ValidateImageUpdate(id *auth.Identity, old, img *api.Image) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	o, n := &old.Spec, &img.Spec
	switch {
	case n.Public && !o.Public && !id.ClusterAdmin:
		return publishForbidden(id)
	case n.Format != o.Format:
		return Immutable("spec.format")
	case n.Architecture != o.Architecture:
		return Immutable("spec.architecture")
	case !jsonEqual(n.Layers, o.Layers):
		return Immutable("spec.layers")
	case !jsonEqual(n.Config, o.Config):
		return Immutable("spec.config")
	case !jsonEqual(n.Disk, o.Disk):
		return Immutable("spec.disk")
	case !jsonEqual(n.Kernel, o.Kernel):
		return Immutable("spec.kernel")
	case !jsonEqual(n.Initrd, o.Initrd):
		return Immutable("spec.initrd")
	case n.Cmdline != o.Cmdline:
		return Immutable("spec.cmdline")
	}
	if err := validateSource(n.Source); err != nil {
		return err
	}
	return ValidateDescription("spec.description", n.Description)
}

// validateSource bounds spec.source.
func validateSource(s string) error {
	if len(s) > maxSourceBytes {
		return api.Invalid("spec.source", fmt.Sprintf("use at most %d bytes", maxSourceBytes), "source is too long")
	}
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
	if err := ValidateArgs("spec.config.entrypoint", spec.Config.Entrypoint); err != nil {
		return err
	}
	if err := ValidateArgs("spec.config.cmd", spec.Config.Cmd); err != nil {
		return err
	}
	if err := ValidateEnv("spec.config.env", spec.Config.Env); err != nil {
		return err
	}
	if len(spec.Config.WorkingDir) > MaxArgBytes || len(spec.Config.User) > 256 {
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
	if len(c) > MaxCmdlineBytes {
		return api.Invalid(field, fmt.Sprintf("use at most %d bytes", MaxCmdlineBytes), "command line is %d bytes", len(c))
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

// checkBlob makes sure a blob was uploaded with the stated size and that
// id may refer to it, and freshens its time, so the sweep's age rule does
// not take a blob an image was just made of. A blob id may not refer to
// is answered as not uploaded, before its size is looked at.
func checkBlob(ctx context.Context, blobs Blobs, id *auth.Identity, field string, b *api.Blob, now time.Time) error {
	hex, err := BlobDigest(field+".digest", b.Digest)
	if err != nil {
		return err
	}
	notUploaded := api.Invalid(field+".digest", "upload it first with PUT /v1/blobs/"+b.Digest, "blob %s was not uploaded", b.Digest)
	ok, err := blobs.CanRefer(ctx, id, hex)
	if err != nil {
		return unavailable(fmt.Errorf("decide access to blob: %w", err))
	}
	if !ok {
		return notUploaded
	}
	st, err := blobs.Stat(hex)
	if errors.Is(err, fs.ErrNotExist) {
		return notUploaded
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", field, err)
	}
	if st.Size() != b.Size {
		return api.Invalid(field+".size", fmt.Sprintf("the blob is %d bytes", st.Size()), "size %d does not match the blob", b.Size)
	}
	blobs.Touch(hex, now)
	return nil
}

// unavailable marks err as a 503 answer: a backend did not answer. Front
// ends log the cause and do not send it.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
		Message: "a backend did not answer", Hint: "retry in a moment"}, err)
}

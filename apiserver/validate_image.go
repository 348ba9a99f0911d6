package apiserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Image bounds.
const maxLayers = 127

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

var architectures = map[string]bool{"": true, "amd64": true, "arm64": true, "arm": true, "386": true, "riscv64": true, "ppc64le": true, "s390x": true}

// maxCmdline bounds a kernel command line (Linux takes 2 KiB on x86 and
// 4 KiB elsewhere; QEMU rejects what the machine cannot take).
const maxCmdline = 4096

// imageBlob is one blob of an image with the field it came from and the
// media types allowed for it.
type imageBlob struct {
	field      string
	blob       api.Blob
	mediaTypes []string
}

// validateImageCreate checks an image's content against the blob store and
// marks it Ready. The caller holds blobMu for reading.
func (s *Server) validateImageCreate(img *api.Image) error {
	spec := &img.Spec
	driver := api.DriverForFormat(spec.Format)
	if driver == "" {
		return api.Invalid("spec.format", `use "oci" (containers), or "qcow2", "raw" or "kernel" (virtual machines)`, "format %q is not supported", spec.Format)
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
	var blobs []imageBlob
	var err error
	if spec.Format == api.FormatOCI {
		blobs, err = ociBlobs(spec)
	} else {
		blobs, err = vmBlobs(spec)
	}
	if err != nil {
		return err
	}
	var total int64
	now := time.Now()
	for _, ib := range blobs {
		l := ib.blob
		m := digestRE.FindStringSubmatch(l.Digest)
		if m == nil {
			return api.Invalid(ib.field+".digest", "write sha256:<64 lower-case hex digits>", "digest %q is not valid", truncate(l.Digest, 80))
		}
		if !slices.Contains(ib.mediaTypes, l.MediaType) {
			return api.Invalid(ib.field+".mediaType", "use "+strings.Join(ib.mediaTypes, " or "), "media type %q is not supported", l.MediaType)
		}
		path := s.blobPath(m[1])
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return api.Invalid(ib.field+".digest", "upload it first with PUT /v1/blobs/"+l.Digest, "blob %s was not uploaded", l.Digest)
		}
		if err != nil {
			return fmt.Errorf("stat blob: %w", err)
		}
		if st.Size() != l.Size {
			return api.Invalid(ib.field+".size", fmt.Sprintf("the blob is %d bytes", st.Size()), "size %d does not match the blob", l.Size)
		}
		// A fresh time keeps the sweep's age rule from taking a blob that
		// an image was just made of.
		os.Chtimes(path, now, now)
		total += l.Size
	}
	img.Status = api.ImageStatus{Phase: "Ready", Driver: driver, Size: total}
	return nil
}

// ociBlobs checks what is particular to a container image and returns
// its layers.
func ociBlobs(spec *api.ImageSpec) ([]imageBlob, error) {
	if len(spec.Layers) < 1 || len(spec.Layers) > maxLayers {
		return nil, api.Invalid("spec.layers", fmt.Sprintf("give 1 to %d layers", maxLayers), "%d layers given", len(spec.Layers))
	}
	for _, f := range []struct {
		field string
		set   bool
	}{{"spec.disk", spec.Disk != nil}, {"spec.kernel", spec.Kernel != nil}, {"spec.initrd", spec.Initrd != nil}, {"spec.cmdline", spec.Cmdline != ""}} {
		if f.set {
			return nil, api.Invalid(f.field, "leave it out of an oci image (it is for virtual machine images)", "%s is set on an oci image", f.field)
		}
	}
	if err := validateArgs("spec.config.entrypoint", spec.Config.Entrypoint); err != nil {
		return nil, err
	}
	if err := validateArgs("spec.config.cmd", spec.Config.Cmd); err != nil {
		return nil, err
	}
	if err := validateEnv("spec.config.env", spec.Config.Env); err != nil {
		return nil, err
	}
	if len(spec.Config.WorkingDir) > maxArgBytes || len(spec.Config.User) > 256 {
		return nil, api.Invalid("spec.config", "use a shorter workingDir or user", "value too long")
	}
	var out []imageBlob
	for i, l := range spec.Layers {
		out = append(out, imageBlob{fmt.Sprintf("spec.layers[%d]", i), l, []string{api.MediaTypeLayerGzip, api.MediaTypeLayerTar}})
	}
	return out, nil
}

// vmBlobs checks what is particular to a virtual machine image (qcow2,
// raw or kernel) and returns its disk, kernel and initrd.
func vmBlobs(spec *api.ImageSpec) ([]imageBlob, error) {
	if len(spec.Layers) > 0 {
		return nil, api.Invalid("spec.layers", "leave them out of a "+spec.Format+" image (layers are for oci images)", "%d layers given", len(spec.Layers))
	}
	if !jsonEqual(spec.Config, api.ImageConfig{}) {
		return nil, api.Invalid("spec.config", "leave it out of a "+spec.Format+" image (a VM boots its own init)", "config is set")
	}
	var out []imageBlob
	switch spec.Format {
	case api.FormatQCOW2, api.FormatRaw:
		if spec.Disk == nil {
			return nil, api.Invalid("spec.disk", "give the disk blob of a "+spec.Format+" image", "no disk given")
		}
		mt := api.MediaTypeDiskQCOW2
		if spec.Format == api.FormatRaw {
			mt = api.MediaTypeDiskRaw
		}
		out = append(out, imageBlob{"spec.disk", *spec.Disk, []string{mt}})
	case api.FormatKernel:
		if spec.Disk != nil {
			return nil, api.Invalid("spec.disk", `leave it out of a kernel image, or use format "qcow2" or "raw" for a disk booted with a kernel`, "a kernel image has a disk")
		}
		if spec.Kernel == nil {
			return nil, api.Invalid("spec.kernel", "give the kernel blob of a kernel image", "no kernel given")
		}
	}
	if spec.Kernel != nil {
		out = append(out, imageBlob{"spec.kernel", *spec.Kernel, []string{api.MediaTypeKernel}})
	}
	if spec.Initrd != nil {
		if spec.Kernel == nil {
			return nil, api.Invalid("spec.initrd", "give spec.kernel too, or leave the initrd out", "an initrd without a kernel")
		}
		out = append(out, imageBlob{"spec.initrd", *spec.Initrd, []string{api.MediaTypeInitrd}})
	}
	if spec.Cmdline != "" {
		if spec.Kernel == nil {
			return nil, api.Invalid("spec.cmdline", "give spec.kernel too, or leave the command line out", "a kernel command line without a kernel")
		}
		if len(spec.Cmdline) > maxCmdline || strings.ContainsAny(spec.Cmdline, "\x00\n\r") {
			return nil, api.Invalid("spec.cmdline", fmt.Sprintf("use one line of at most %d bytes", maxCmdline), "the kernel command line is too long or has a line break")
		}
	}
	return out, nil
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
	case !jsonEqual(n.Disk, o.Disk):
		return immutable("spec.disk")
	case !jsonEqual(n.Kernel, o.Kernel):
		return immutable("spec.kernel")
	case !jsonEqual(n.Initrd, o.Initrd):
		return immutable("spec.initrd")
	case n.Cmdline != o.Cmdline:
		return immutable("spec.cmdline")
	}
	if len(n.Source) > 2048 {
		return api.Invalid("spec.source", "use at most 2048 bytes", "source is too long")
	}
	return validateDescription("spec.description", n.Description)
}

package api

// Image formats.
const (
	// FormatOCI is a container root filesystem as ordered tar layers.
	FormatOCI = "oci"
	// FormatQCOW2 is a virtual machine disk in QEMU's qcow2 format
	// (spec.disk), optionally booted with spec.kernel/spec.initrd.
	FormatQCOW2 = "qcow2"
	// FormatRaw is a virtual machine disk as a raw byte image (spec.disk),
	// optionally booted with spec.kernel/spec.initrd.
	FormatRaw = "raw"
	// FormatKernel is a kernel and an optional initramfs booted directly,
	// with no disk image (spec.kernel, spec.initrd, spec.cmdline).
	FormatKernel = "kernel"
)

// Media types of virtual machine image blobs.
const (
	MediaTypeDiskQCOW2 = "application/vnd.ouro.disk.qcow2"
	MediaTypeDiskRaw   = "application/vnd.ouro.disk.raw"
	MediaTypeKernel    = "application/vnd.ouro.kernel"
	MediaTypeInitrd    = "application/vnd.ouro.initrd"
)

// Instance drivers an image can need.
const (
	DriverContainer = "container"
	DriverVM        = "vm"
)

// DriverForFormat returns the instance driver that runs images of the
// format, or "" for an unknown format.
func DriverForFormat(format string) string {
	switch format {
	case FormatOCI:
		return DriverContainer
	case FormatQCOW2, FormatRaw, FormatKernel:
		return DriverVM
	}
	return ""
}

// Layer media types accepted for FormatOCI images.
const (
	MediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerTar  = "application/vnd.oci.image.layer.v1.tar"
)

// Image is a bootable thing an instance starts from. Its content lives in
// content-addressed blobs uploaded to /v1/blobs before the image is created;
// the server refuses an image whose blobs are missing or whose sizes differ.
type Image struct {
	Kind     string      `json:"kind"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     ImageSpec   `json:"spec"`
	Status   ImageStatus `json:"status"`
}

// ImageSpec is an image's content and visibility.
type ImageSpec struct {
	// Public images can be used by every project.
	Public bool `json:"public,omitempty"`
	// Format decides the driver: "oci" images make containers; "qcow2",
	// "raw" and "kernel" images make virtual machines.
	Format string `json:"format"`
	// Architecture the image is built for (amd64, arm64); empty means any.
	Architecture string `json:"architecture,omitempty"`
	// Layers of an oci image, lowest first.
	Layers []Blob `json:"layers,omitempty"`
	// Config is the default process of an oci image.
	Config ImageConfig `json:"config"`
	// Disk is the root disk of a qcow2 or raw image. Instances get a
	// copy-on-write overlay of it, grown to the flavor's disk size.
	Disk *Blob `json:"disk,omitempty"`
	// Kernel, Initrd and Cmdline boot a VM directly (QEMU -kernel): the
	// whole image of a "kernel" image, or the boot files of a disk image
	// that has no boot loader of its own.
	Kernel  *Blob  `json:"kernel,omitempty"`
	Initrd  *Blob  `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Source tells where the image was imported from (informational).
	Source      string `json:"source,omitempty"`
	Description string `json:"description,omitempty"`
}

// Blob is a piece of content by digest.
type Blob struct {
	// Digest is "sha256:<64 hex>".
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
}

// ImageConfig is the process an oci image runs by default.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// ImageStatus is set by the server.
type ImageStatus struct {
	// Phase is "Ready" once every blob was verified.
	Phase string `json:"phase,omitempty"`
	// Driver is the instance driver the image needs ("container", "vm").
	Driver string `json:"driver,omitempty"`
	// Size is the sum of the blob sizes in bytes.
	Size int64 `json:"size,omitempty"`
}

// Meta returns the image's metadata.
func (o *Image) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns ImageKind.
func (o *Image) GetKind() *Kind { return ImageKind }

// Blobs returns every blob the image's content is made of.
func (s *ImageSpec) Blobs() []Blob {
	out := append([]Blob(nil), s.Layers...)
	for _, b := range []*Blob{s.Disk, s.Kernel, s.Initrd} {
		if b != nil {
			out = append(out, *b)
		}
	}
	return out
}

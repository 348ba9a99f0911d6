package api

// Image formats.
const (
	// FormatOCI is a container root filesystem as ordered tar layers.
	FormatOCI = "oci"
)

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
	// Format decides the driver: "oci" images make containers.
	Format string `json:"format"`
	// Architecture the image is built for (amd64, arm64); empty means any.
	Architecture string `json:"architecture,omitempty"`
	// Layers of an oci image, lowest first.
	Layers []Blob `json:"layers,omitempty"`
	// Config is the default process of an oci image.
	Config ImageConfig `json:"config"`
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
	// Driver is the instance driver the image needs ("container").
	Driver string `json:"driver,omitempty"`
	// Size is the sum of the blob sizes in bytes.
	Size int64 `json:"size,omitempty"`
}

// Meta returns the image's metadata.
func (o *Image) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns ImageKind.
func (o *Image) GetKind() *Kind { return ImageKind }

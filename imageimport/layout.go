package imageimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Limits on the JSON documents of an image; real ones are a few KiB.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 16 << 20
)

// Media types of manifests and indexes, OCI and Docker.
const (
	mediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerSchema2 = "application/vnd.docker.distribution.manifest.v2+json"
)

// descriptor points at a blob (OCI image spec, descriptor.md).
type descriptor struct {
	MediaType   string            `json:"mediaType,omitempty"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// platform is the OS and architecture an index entry is built for.
type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

func (p *platform) String() string {
	s := p.OS + "/" + normalizeArch(p.Architecture)
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// manifestOrIndex holds the fields of both an image manifest and an image
// index, so one decode tells which it is.
type manifestOrIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Manifests     []descriptor `json:"manifests,omitempty"`
	Config        *descriptor  `json:"config,omitempty"`
	Layers        []descriptor `json:"layers,omitempty"`
}

func (m *manifestOrIndex) isIndex() bool {
	switch m.MediaType {
	case mediaTypeOCIIndex, mediaTypeDockerList:
		return true
	case mediaTypeOCIManifest, mediaTypeDockerSchema2:
		return false
	}
	return m.Config == nil && m.Manifests != nil
}

// configFile is the part of an image config (OCI image spec, config.md)
// Ouroboros uses.
type configFile struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
		Env        []string `json:"Env"`
		WorkingDir string   `json:"WorkingDir"`
		User       string   `json:"User"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// layerSource is a layer to copy: what is declared of it and how to read it.
type layerSource struct {
	want layerWant
	open func() (io.ReadCloser, error)
}

// maxIndexDepth bounds indexes that point at indexes.
const maxIndexDepth = 4

// loadLayout reads the image for this host from an OCI image layout.
func loadLayout(ctx context.Context, fsys fs.FS, source string, ws *workspace) (*Image, error) {
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := readJSON(fsys, "oci-layout", maxManifestSize, &marker); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(marker.Version, "1.") {
		return nil, fmt.Errorf("oci-layout: image layout version %q is not supported (want 1.x)", marker.Version)
	}
	var idx manifestOrIndex
	if err := readJSON(fsys, "index.json", maxManifestSize, &idx); err != nil {
		return nil, err
	}
	read := func(d descriptor, limit int64) ([]byte, error) { return readBlob(fsys, d, limit) }
	m, err := resolveManifest(idx.Manifests, read, "index.json", 0)
	if err != nil {
		return nil, err
	}
	if m.Config == nil {
		return nil, errors.New("image manifest has no config")
	}
	raw, err := readBlob(fsys, *m.Config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	layers := make([]layerSource, len(m.Layers))
	for i, d := range m.Layers {
		if err := checkDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		layers[i] = layerSource{
			want: layerWant{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType},
			open: func() (io.ReadCloser, error) { return fsys.Open(blobPath(d.Digest)) },
		}
	}
	return assemble(ctx, ws, raw, layers, source)
}

// resolveManifest picks the manifest for this host from an index's
// entries, following nested indexes, and returns it decoded.
func resolveManifest(entries []descriptor, read func(descriptor, int64) ([]byte, error), where string, depth int) (*manifestOrIndex, error) {
	if depth > maxIndexDepth {
		return nil, fmt.Errorf("%s: indexes nested more than %d deep", where, maxIndexDepth)
	}
	d, err := choosePlatform(entries, where)
	if err != nil {
		return nil, err
	}
	data, err := read(d, maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	var m manifestOrIndex
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.isIndex() {
		return resolveManifest(m.Manifests, read, "index "+d.Digest, depth+1)
	}
	return &m, nil
}

// choosePlatform picks the entry of an index built for linux/hostArch, or
// the only entry when entries name no platform. Attestations and other
// non-image entries are ignored.
func choosePlatform(entries []descriptor, where string) (descriptor, error) {
	var images []descriptor
	for _, d := range entries {
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if d.Platform != nil && d.Platform.OS == "unknown" {
			continue
		}
		images = append(images, d)
	}
	var others []string
	var unknown []descriptor
	for _, d := range images {
		switch {
		case d.Platform == nil || d.Platform.Architecture == "":
			unknown = append(unknown, d)
		case (d.Platform.OS == "linux" || d.Platform.OS == "") && normalizeArch(d.Platform.Architecture) == hostArch:
			return d, nil
		default:
			others = append(others, d.Platform.String())
		}
	}
	switch {
	case len(images) == 0:
		return descriptor{}, fmt.Errorf("%s lists no image", where)
	case len(unknown) == 1:
		return unknown[0], nil
	case len(unknown) == 0:
		sort.Strings(others)
		return descriptor{}, fmt.Errorf("the image is built for %s, but this host is linux/%s; import an image for linux/%s", strings.Join(others, ", "), hostArch, hostArch)
	}
	var refs []string
	for _, d := range unknown {
		if r := d.Annotations["org.opencontainers.image.ref.name"]; r != "" {
			refs = append(refs, r)
		} else {
			refs = append(refs, d.Digest)
		}
	}
	return descriptor{}, fmt.Errorf("%s lists %d images (%s) and none says its platform; export a single image", where, len(unknown), strings.Join(refs, ", "))
}

// assemble checks an image config and copies its layers.
func assemble(ctx context.Context, ws *workspace, rawConfig []byte, layers []layerSource, source string) (*Image, error) {
	var cfg configFile
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, fmt.Errorf("the image is built for %s/%s; only linux images run here", cfg.OS, cfg.Architecture)
	}
	arch := normalizeArch(cfg.Architecture)
	if err := checkArch(arch); err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		return nil, errors.New("the image has no layers")
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != 0 && len(diffIDs) != len(layers) {
		return nil, fmt.Errorf("image config lists %d layer diff_ids for %d layers", len(diffIDs), len(layers))
	}
	img := &Image{
		Config: api.ImageConfig{
			Entrypoint: cfg.Config.Entrypoint,
			Cmd:        cfg.Config.Cmd,
			Env:        cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir,
			User:       cfg.Config.User,
		},
		Architecture: arch,
		Source:       source,
	}
	for i, l := range layers {
		want := l.want
		if len(diffIDs) != 0 {
			want.DiffID = diffIDs[i]
		}
		rc, err := l.open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", want.name(i), err)
		}
		res, err := ws.copyLayer(ctx, rc, want, i, false)
		rc.Close()
		if err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, res.Blob)
	}
	return img, nil
}

// blobPath is where a layout keeps a blob.
func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// readBlob reads a small blob of a layout and checks its size and digest.
func readBlob(fsys fs.FS, d descriptor, limit int64) ([]byte, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed", d.Digest, d.Size, limit)
	}
	data, err := readFile(fsys, blobPath(d.Digest), limit)
	if err != nil {
		return nil, err
	}
	if err := verifyBytes(data, d.Digest); err != nil {
		return nil, err
	}
	if d.Size > 0 && int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s has %d bytes, its descriptor says %d", d.Digest, len(data), d.Size)
	}
	return data, nil
}

// verifyBytes checks data against a sha256 digest.
func verifyBytes(data []byte, digest string) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("blob %s is corrupt: its content hashes to %s", digest, got)
	}
	return nil
}

// readFile reads at most limit bytes of a file.
func readFile(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// readJSON decodes a small JSON file.
func readJSON(fsys fs.FS, name string, limit int64, v any) error {
	data, err := readFile(fsys, name, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

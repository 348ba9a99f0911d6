package imageimport

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ouroboros-cloud/ouro/api"
)

// DefaultPath is the PATH given to images that bring no config of their
// own (root filesystem tarballs, the busybox image).
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Blob is a layer that was verified and stored as a local file.
type Blob struct {
	api.Blob
	// Path is the layer's file, named after its digest, in the work
	// directory given to Load or Busybox.
	Path string
}

// Image is an image ready to upload: for a container image, verified
// layer files, lowest first, and the default process; for a virtual
// machine image, the disk and boot files.
type Image struct {
	// Format is the api.Format* of the image; "" means api.FormatOCI.
	Format string
	Layers []Blob
	Config api.ImageConfig
	// Disk, Kernel and Initrd are the files of a virtual machine image
	// (see api.ImageSpec); Cmdline is the kernel command line.
	Disk, Kernel, Initrd *Blob
	Cmdline              string
	// Architecture as Go names it (amd64, arm64); "" means unknown.
	Architecture string
	// Source says where the image came from, for humans.
	Source string
}

// hostArch is the architecture images must be built for; a variable so
// tests can pretend to be another machine.
var hostArch = runtime.GOARCH

// Load reads the image at source into workDir and verifies every layer.
// source is an OCI layout directory, a tar of one, a docker save tar, a
// root filesystem tarball or a registry reference (see the package
// documentation). Load refuses an image built for another architecture
// than this host's. On any failure it removes every file it wrote in
// workDir; on success the layer files are the caller's to remove.
//
// workDir should belong to the caller alone: Load names layer files after
// their digests and keeps partial files under names starting ".partial-".
func Load(ctx context.Context, source, workDir string) (*Image, error) {
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	ws := &workspace{dir: workDir}
	img, err := load(ctx, source, ws)
	if err != nil {
		ws.cleanup()
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	return img, nil
}

func load(ctx context.Context, source string, ws *workspace) (*Image, error) {
	fi, err := os.Stat(source)
	switch {
	case err == nil && fi.IsDir():
		return loadLayoutDir(ctx, source, ws)
	case err == nil:
		return loadFile(ctx, source, ws)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case looksLikePath(source):
		return nil, fmt.Errorf("no such file or directory")
	}
	ref, err := parseReference(source)
	if err != nil {
		return nil, err
	}
	return pull(ctx, ref, ws)
}

// looksLikePath tells a mistyped file name from a registry reference, so
// a missing file is reported as such rather than pulled.
func looksLikePath(s string) bool {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") {
		return true
	}
	for _, ext := range []string{".tar", ".tgz", ".tar.gz", ".gz", ".oci"} {
		if strings.HasSuffix(s, ext) {
			return true
		}
	}
	return false
}

// parseReference reads a registry reference such as "alpine" or
// "docker.io/library/alpine:3.20".
func parseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("not a file, a directory or an image reference like docker.io/library/alpine:3.20: %w", err)
	}
	return ref, nil
}

// loadLayoutDir reads an OCI image layout directory.
func loadLayoutDir(ctx context.Context, dir string, ws *workspace) (*Image, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fsys := root.FS()
	if !exists(fsys, "oci-layout") || !exists(fsys, "index.json") {
		return nil, errors.New("directory is not an OCI image layout: it needs the files oci-layout and index.json (as `skopeo copy docker://IMAGE oci:DIR` writes)")
	}
	return loadLayout(ctx, fsys, dir, ws)
}

// loadFile tells an archive of an image from a root filesystem tarball.
func loadFile(ctx context.Context, file string, ws *workspace) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 6)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, zstdMagic), bytes.HasPrefix(head, xzMagic), bytes.HasPrefix(head, bzipMagic):
		return nil, errors.New("the file is zstd-, xz- or bzip2-compressed; decompress it (or recompress it with gzip) and import again")
	case bytes.HasPrefix(head, gzipMagic):
		return loadGzipFile(ctx, f, ws)
	}
	tfs, seen, err := indexTar(f)
	switch {
	case err == nil && isArchive(tfs.names()):
		return loadArchive(ctx, tfs, file, ws)
	case err != nil && isArchive(seen):
		return nil, fmt.Errorf("image archive is truncated or corrupt: %w", err)
	case err != nil && len(seen) == 0:
		return nil, fmt.Errorf("not an OCI layout, a docker save archive or a tar file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return loadRootfs(ctx, f, file, ws)
}

// loadGzipFile handles a gzip-compressed archive or rootfs tarball. An
// archive is decompressed into the work directory first, because reading
// it needs random access; the copy is removed afterwards.
func loadGzipFile(ctx context.Context, f *os.File, ws *workspace) (*Image, error) {
	gz, err := gzip.NewReader(&ctxReader{ctx: ctx, r: f})
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	seen, scanErr := scanTarNames(gz)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch {
	case len(seen) == 0 && scanErr != nil:
		return nil, fmt.Errorf("gzip file does not hold a tar archive: %w", scanErr)
	case !isArchive(seen):
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return loadRootfs(ctx, f, f.Name(), ws)
	case scanErr != nil:
		return nil, fmt.Errorf("image archive is truncated or corrupt: %w", scanErr)
	}
	tmp, err := ws.tempFile("archive")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := gz.Reset(&ctxReader{ctx: ctx, r: f}); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := io.Copy(tmp, gz); err != nil {
		return nil, fmt.Errorf("decompress archive: %w", err)
	}
	tfs, _, err := indexTar(tmp)
	if err != nil {
		return nil, fmt.Errorf("image archive is truncated or corrupt: %w", err)
	}
	return loadArchive(ctx, tfs, f.Name(), ws)
}

// isArchive reports whether the top-level names of a tar make it an image
// archive rather than a root filesystem.
func isArchive(names map[string]bool) bool {
	return (names["oci-layout"] && names["index.json"]) || names["manifest.json"]
}

// loadArchive reads an OCI layout tar or a docker save tar. A docker save
// tar that also holds an OCI layout (Docker 25 and later) is read through
// its manifest.json, which lists exactly the blobs the tar holds.
func loadArchive(ctx context.Context, fsys fs.FS, source string, ws *workspace) (*Image, error) {
	if exists(fsys, "manifest.json") {
		return loadDockerSave(ctx, fsys, source, ws)
	}
	return loadLayout(ctx, fsys, source, ws)
}

// loadRootfs makes a one-layer image of a root filesystem tarball. The
// layer is the file itself; the architecture is that of the first
// executable found in a bin directory.
func loadRootfs(ctx context.Context, r io.Reader, source string, ws *workspace) (*Image, error) {
	res, err := ws.copyLayer(ctx, r, layerWant{Size: -1}, 0, true)
	if err != nil {
		return nil, err
	}
	if err := checkArch(res.Arch); err != nil {
		return nil, err
	}
	return &Image{
		Layers:       []Blob{res.Blob},
		Config:       DefaultConfig(),
		Architecture: res.Arch,
		Source:       source,
	}, nil
}

// DefaultConfig is the process of an image that brings none: /bin/sh with
// the usual PATH.
func DefaultConfig() api.ImageConfig {
	return api.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{DefaultPath}}
}

// checkArch refuses an image built for another architecture than the
// host's. An unknown architecture ("") is accepted.
func checkArch(arch string) error {
	if arch != "" && arch != hostArch {
		return fmt.Errorf("the image is built for %s, but this host is %s; import an image for linux/%s", arch, hostArch, hostArch)
	}
	return nil
}

// normalizeArch maps the other names of architectures found in image
// configs to Go's.
func normalizeArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "i386", "i686":
		return "386"
	}
	return a
}

// format returns the image's API format.
func (img *Image) format() string {
	if img.Format == "" {
		return api.FormatOCI
	}
	return img.Format
}

// blobs returns every file of the image, in upload order.
func (img *Image) blobs() []Blob {
	out := append([]Blob(nil), img.Layers...)
	for _, b := range []*Blob{img.Disk, img.Kernel, img.Initrd} {
		if b != nil {
			out = append(out, *b)
		}
	}
	return out
}

func exists(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.Mode().IsRegular()
}

package imageimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Options say what LoadSource imports besides the source itself.
type Options struct {
	// Format is "" to detect it, or api.FormatOCI, FormatQCOW2 or
	// FormatRaw to insist.
	Format string
	// SHA256 is the expected SHA-256 of a source file or download (hex,
	// optionally prefixed "sha256:"); "" checks nothing.
	SHA256 string
	// Kernel and Initrd are files that boot a virtual machine directly:
	// with no source, a "kernel" image; with a disk source, the disk's
	// boot files. Cmdline is the kernel command line.
	Kernel, Initrd, Cmdline string
	// Architecture overrides the detected one (Go names); "" keeps it.
	Architecture string
	// Progress, if set, is told how far each step is: step is
	// "Downloading", "Reading disk", "Reading kernel" or "Reading initrd";
	// total is -1 when unknown.
	Progress func(step string, done, total int64)
}

// LoadSource reads what `ouro image import` was given into workDir:
//
//   - an http(s) URL is downloaded first (streamed to a file while hashed)
//     and then treated like a file;
//   - a file starting with the qcow2 magic is a qcow2 disk image; with
//     --format raw, or named *.img or *.raw and claimed by no other
//     format, a raw disk image;
//   - anything else goes to Load as a container image;
//   - no source at all, with opts.Kernel, is a "kernel" image.
//
// Disk images, kernels and initrds are checked (a truncated or corrupt
// qcow2, a raw image that is not whole sectors, a file that is no kernel
// are refused) and hashed; local files are uploaded from where they are,
// downloads from workDir. On failure nothing is left in workDir.
func LoadSource(ctx context.Context, source, workDir string, opts Options) (*Image, error) {
	if err := checkOptions(source, &opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	ws := &workspace{dir: workDir}
	img, err := loadSource(ctx, source, ws, opts)
	if err != nil {
		ws.cleanup()
		if source == "" {
			return nil, fmt.Errorf("import kernel %s: %w", opts.Kernel, err)
		}
		return nil, fmt.Errorf("import %s: %w", source, err)
	}
	return img, nil
}

// checkOptions refuses combinations that make no sense before anything
// is read or downloaded.
func checkOptions(source string, opts *Options) error {
	switch opts.Format {
	case "", api.FormatOCI, api.FormatQCOW2, api.FormatRaw:
	case api.FormatKernel:
		if source != "" {
			return errors.New(`--format kernel takes no SOURCE: give the kernel with --kernel`)
		}
	default:
		return fmt.Errorf("--format %q is not known; use qcow2, raw, kernel or oci, or leave it out to detect the format", opts.Format)
	}
	if opts.SHA256 != "" {
		h, err := normalizeSHA256(opts.SHA256)
		if err != nil {
			return err
		}
		opts.SHA256 = h
	}
	if opts.Kernel == "" && (opts.Initrd != "" || opts.Cmdline != "") {
		return errors.New("--initrd and --cmdline need --kernel")
	}
	if source == "" {
		if opts.Kernel == "" {
			return errors.New("give a SOURCE to import, or --kernel for an image that boots a kernel directly")
		}
		if opts.SHA256 != "" {
			return errors.New("--sha256 checks SOURCE; there is none")
		}
	}
	if opts.Kernel != "" && opts.Format == api.FormatOCI {
		return errors.New("--kernel boots a virtual machine; an oci image makes containers")
	}
	if len(opts.Cmdline) > 4096 {
		return fmt.Errorf("--cmdline is %d bytes; the limit is 4096", len(opts.Cmdline))
	}
	for i := 0; i < len(opts.Cmdline); i++ {
		if c := opts.Cmdline[i]; c < ' ' || c > '~' {
			return fmt.Errorf("--cmdline: byte %d is %q; use printable ASCII", i, c)
		}
	}
	if opts.Architecture != "" && normalizeArch(opts.Architecture) != opts.Architecture {
		return fmt.Errorf("--arch %q: use Go's name, %s", opts.Architecture, normalizeArch(opts.Architecture))
	}
	return nil
}

func loadSource(ctx context.Context, source string, ws *workspace, opts Options) (*Image, error) {
	progress := func(step string) func(done, total int64) {
		if opts.Progress == nil {
			return nil
		}
		return func(done, total int64) { opts.Progress(step, done, total) }
	}
	img := &Image{Source: source}
	var file, name, digest string
	var size int64
	switch {
	case source == "":
		img.Format, img.Source = api.FormatKernel, "kernel "+opts.Kernel
	case isURL(source):
		got, err := ws.fetch(ctx, source, opts.SHA256, progress("Downloading"))
		if err != nil {
			return nil, err
		}
		file, name, size, digest = got.path, got.name, got.size, got.digest
	default:
		fi, err := os.Stat(source)
		if err == nil && fi.Mode().IsRegular() {
			file, name, size = source, filepath.Base(source), fi.Size()
			break
		}
		if opts.Format == api.FormatQCOW2 || opts.Format == api.FormatRaw || opts.Kernel != "" {
			if err != nil {
				return nil, fmt.Errorf("a disk image must be a file or an http(s) URL: %w", err)
			}
			return nil, errors.New("a disk image must be a file or an http(s) URL, not a directory")
		}
		if opts.SHA256 != "" {
			return nil, errors.New("--sha256 checks files and downloads, not directories or registry references (a registry's digests are checked anyway)")
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return withArch(load(ctx, source, ws))(opts.Architecture)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		head := make([]byte, sniffLen)
		n, err := f.ReadAt(head, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		kind, err := classify(head[:n], name, opts.Format)
		if err != nil {
			return nil, err
		}
		if kind == kindContainer {
			if opts.Kernel != "" {
				return nil, errors.New("--kernel needs a disk image (qcow2, or raw with --format raw); this file is not one")
			}
			if digest == "" && opts.SHA256 != "" {
				if digest, err = hashFile(ctx, f, size, progress("Reading "+name)); err != nil {
					return nil, err
				}
				if err := checkSHA256(digest, opts.SHA256); err != nil {
					return nil, err
				}
			}
			ci, err := loadFile(ctx, file, ws)
			if err != nil && !isURL(source) && !strings.Contains(strings.ToLower(name), ".tar") && !strings.HasSuffix(name, ".tgz") {
				err = fmt.Errorf("%w (for a raw disk image give --format raw)", err)
			}
			if ci != nil {
				ci.Source = source
			}
			if isURL(source) {
				os.Remove(file) // the layers were copied out of it
			}
			return withArch(ci, err)(opts.Architecture)
		}
		img.Format, img.Disk = api.FormatQCOW2, &Blob{Blob: api.Blob{MediaType: api.MediaTypeDiskQCOW2}}
		if kind == kindRaw {
			img.Format, img.Disk.MediaType = api.FormatRaw, api.MediaTypeDiskRaw
			err = checkRaw(size)
		} else {
			_, err = checkQCOW2(f, size)
		}
		if err != nil {
			return nil, err
		}
		if digest == "" {
			if digest, err = hashFile(ctx, f, size, progress("Reading disk")); err != nil {
				return nil, err
			}
			if err := checkSHA256(digest, opts.SHA256); err != nil {
				return nil, err
			}
		}
		img.Disk.Digest, img.Disk.Size, img.Disk.Path = digest, size, file
	}
	if opts.Kernel != "" {
		if err := loadBootFiles(ctx, img, opts, progress); err != nil {
			return nil, err
		}
	}
	switch {
	case opts.Architecture == "":
	case img.Architecture != "" && img.Architecture != opts.Architecture:
		return nil, fmt.Errorf("--arch %s does not match the kernel, which is built for %s", opts.Architecture, img.Architecture)
	default:
		img.Architecture = opts.Architecture
	}
	return img, nil
}

// loadBootFiles checks and hashes the kernel and initrd and sets the
// image's architecture from the kernel.
func loadBootFiles(ctx context.Context, img *Image, opts Options, progress func(step string) func(done, total int64)) error {
	blob := func(path, mediaType string, check func(*os.File, int64) error) (*Blob, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", path)
		}
		if err := check(f, fi.Size()); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		digest, err := hashFile(ctx, f, fi.Size(), progress("Reading "+blobNoun(mediaType)))
		if err != nil {
			return nil, err
		}
		return &Blob{Blob: api.Blob{Digest: digest, Size: fi.Size(), MediaType: mediaType}, Path: path}, nil
	}
	var err error
	img.Kernel, err = blob(opts.Kernel, api.MediaTypeKernel, func(f *os.File, size int64) error {
		img.Architecture, err = kernelArch(f, size)
		return err
	})
	if err != nil {
		return err
	}
	if opts.Initrd != "" {
		if img.Initrd, err = blob(opts.Initrd, api.MediaTypeInitrd, func(f *os.File, _ int64) error { return checkInitrd(f) }); err != nil {
			return err
		}
	}
	img.Cmdline = opts.Cmdline
	return nil
}

// withArch applies --arch to a container image: it fills in an unknown
// architecture and refuses a contradiction.
func withArch(img *Image, err error) func(arch string) (*Image, error) {
	return func(arch string) (*Image, error) {
		if err != nil || arch == "" {
			return img, err
		}
		if img.Architecture != "" && img.Architecture != arch {
			return nil, fmt.Errorf("--arch %s does not match the image, which is built for %s", arch, img.Architecture)
		}
		img.Architecture = arch
		return img, nil
	}
}

// hashFile returns the sha256 digest of size bytes of f from its start.
func hashFile(ctx context.Context, f *os.File, size int64, progress func(done, total int64)) (string, error) {
	h := sha256.New()
	var r io.Reader = &ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, size)}
	if progress != nil {
		progress(0, size)
		r = &progressReader{r: r, fn: func(n int64) { progress(n, size) }}
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if n != size {
		return "", fmt.Errorf("%s changed while it was read (%d bytes, expected %d)", f.Name(), n, size)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// The image cache: every blob (base disk, kernel, initrd) is fetched once
// per host, verified against its digest while it is written, checked, and
// renamed into place read-only:
//
//	Blobs.Open ─▶ sha256 + size ─▶ <Dir>/images/.tmp-<hex>-*
//	                                  │ digest and size ok, disk sane
//	                                  ▼ rename
//	                              <Dir>/images/<hex>   (0444, shared)
//
// A crash or a bad download leaves at most a .tmp- file, removed by the
// next fetch of that digest; a blob is never half there under its final
// name. Each instance gets its own qcow2 overlay backed by the base disk
// (disk.qcow2), grown to the flavor's disk size.

var digestPattern = regexp.MustCompile(`^sha256:([a-f0-9]{64})$`)

func (d *Driver) imagesDir() string { return filepath.Join(d.cfg.Dir, "images") }

// ensureBlob returns the path of the cached blob b, fetching it unless it
// is cached. check, when not nil, vets the downloaded file before it is
// cached. Concurrent calls for one digest fetch it once.
func (d *Driver) ensureBlob(ctx context.Context, b api.Blob, check func(path string) error) (string, error) {
	m := digestPattern.FindStringSubmatch(b.Digest)
	if m == nil {
		return "", fmt.Errorf("blob digest %q: want sha256:<64 lower-case hex digits>", b.Digest)
	}
	hexDigest := m[1]
	final := filepath.Join(d.imagesDir(), hexDigest)
	if fileExists(final) {
		return final, nil
	}
	unlock := d.imageLocks.Lock(hexDigest)
	defer unlock()
	if fileExists(final) { // fetched while we waited
		return final, nil
	}
	if err := os.MkdirAll(d.imagesDir(), 0o700); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	stale, _ := filepath.Glob(filepath.Join(d.imagesDir(), ".tmp-"+hexDigest+"-*"))
	for _, s := range stale {
		if err := os.Remove(s); err != nil {
			return "", fmt.Errorf("blob %s: remove stale download: %w", b.Digest, err)
		}
	}
	f, err := os.CreateTemp(d.imagesDir(), ".tmp-"+hexDigest+"-")
	if err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := d.download(ctx, b, hexDigest, f); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if err := f.Chmod(0o444); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if check != nil {
		if err := check(tmp); err != nil {
			return "", fmt.Errorf("blob %s: %w", b.Digest, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	done = true
	syncDir(d.imagesDir())
	d.log.Info("image blob cached", "digest", b.Digest, "size", b.Size, "mediaType", b.MediaType)
	return final, nil
}

// download writes the blob into f, checking digest and size, and syncs.
func (d *Driver) download(ctx context.Context, b api.Blob, hexDigest string, f *os.File) error {
	rc, err := d.cfg.Blobs.Open(ctx, b.Digest)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return fmt.Errorf("digest mismatch: content of %s has sha256:%s; refusing it", b.Digest, got)
	}
	if b.Size > 0 && n != b.Size {
		return fmt.Errorf("size mismatch: %s is %d bytes, the image says %d", b.Digest, n, b.Size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// diskInfo is the part of `qemu-img info --output=json` the driver reads.
type diskInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
		} `json:"data"`
	} `json:"format-specific"`
}

// diskInfo runs qemu-img info on path, read as format.
func (d *Driver) diskInfo(ctx context.Context, path, format string) (diskInfo, error) {
	var info diskInfo
	out, err := d.run(ctx, d.cfg.QEMUImg, "info", "--output=json", "-f", format, path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return info, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info, nil
}

// checkBaseDisk vets a downloaded base disk of format (qcow2 or raw): it
// must be readable as that format, and a qcow2 image must not refer to
// other files (a backing file or external data file could make the VM
// read any file of the host).
func (d *Driver) checkBaseDisk(ctx context.Context, format string) func(string) error {
	return func(path string) error {
		info, err := d.diskInfo(ctx, path, format)
		if err != nil {
			return fmt.Errorf("not a usable %s disk: %w", format, err)
		}
		if info.BackingFilename != "" {
			return fmt.Errorf("the %s disk refers to a backing file %q; upload a standalone image (qemu-img convert)", format, info.BackingFilename)
		}
		if info.FormatSpecific.Data.DataFile != "" {
			return fmt.Errorf("the %s disk refers to an external data file %q; upload a standalone image", format, info.FormatSpecific.Data.DataFile)
		}
		if info.VirtualSize <= 0 {
			return fmt.Errorf("the %s disk has no size", format)
		}
		return nil
	}
}

// ensureOverlay creates the instance's overlay of base (of format) unless
// it exists, grown to diskGiB when that is larger than the base. It is
// made under a temporary name and renamed, so a crash never leaves a
// half-made disk under the final name.
func (d *Driver) ensureOverlay(ctx context.Context, p instancePaths, base, format string, diskGiB int64) error {
	if fileExists(p.disk) {
		return nil
	}
	tmp := p.disk + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("overlay: %w", err)
	}
	if _, err := d.run(ctx, d.cfg.QEMUImg, "create", "-q", "-f", "qcow2", "-F", format, "-b", base, tmp); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	info, err := d.diskInfo(ctx, base, format)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("overlay: %w", err)
	}
	if want := overlaySize(info.VirtualSize, diskGiB); want > info.VirtualSize {
		if _, err := d.run(ctx, d.cfg.QEMUImg, "resize", "-q", "-f", "qcow2", tmp, strconv.FormatInt(want, 10)); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("overlay: %w", err)
		}
	}
	if err := os.Rename(tmp, p.disk); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	syncDir(p.dir)
	return nil
}

// overlaySize is the virtual size of an instance disk: the flavor's disk
// size when it is larger than the base image, else the base's size (a
// disk is never shrunk below its content).
func overlaySize(baseBytes, diskGiB int64) int64 {
	want := diskGiB << 30
	if want > baseBytes {
		return want
	}
	return baseBytes
}

// diskFormat returns the QEMU format of an image's disk.
func diskFormat(spec api.ImageSpec) string {
	if spec.Format == api.FormatRaw {
		return "raw"
	}
	return "qcow2"
}

// run runs a program and returns its standard output; the error carries
// its standard error.
func (d *Driver) run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, truncate(strings.TrimSpace(stderr.String()), 500))
	}
	return stdout.String(), nil
}

// syncDir flushes a directory's entries (a rename) to disk; failures are
// not fatal.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// The image cache: every blob (base disk, kernel, initrd) is fetched once
// per host into a blobcache.Cache in <Dir>/images, verified against its
// digest and size while it is written, vetted (a base disk must be a sane
// disk) and renamed into place read-only (<Dir>/images/<hex>, shared).
// Each instance gets its own qcow2 overlay backed by the base disk
// (disk.qcow2), grown to the flavor's disk size.

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

package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
)

// Volumes: a container's volume is a host block device (a loop device
// over a local volume's file, or a mapped RBD image) holding an ext4
// filesystem, made on first use. At every start the driver mounts it on
// the host at volumes/<id> of the instance directory and the bundle
// bind-mounts that into the container at the volume's path; the host
// mount is undone when the container stops. The host mount (rather than
// an ext4 mount in the spec) works with user namespaces, which may not
// mount block devices; the filesystem's root directory is owned by the
// container's root. The devices come from the agent before each start
// (SetVolumes): a device name does not survive a host reboot.

// SetVolumes records the volumes, with their devices, the next start
// mounts. The running container keeps what it has.
func (d *Driver) SetVolumes(_ context.Context, id string, vols []driver.Volume) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	if vols == nil {
		vols = []driver.Volume{}
	}
	if err := instancedir.WriteJSON(d.volumesPath(id), vols); err != nil {
		return fmt.Errorf("set volumes of container %s: %w", id, err)
	}
	return nil
}

func (d *Driver) volumesPath(id string) string {
	return filepath.Join(d.instanceDir(id), "volumes.json")
}

// volumesOf returns the volumes of the next start: the last SetVolumes,
// else the spec's.
func (d *Driver) volumesOf(spec driver.Spec) ([]driver.Volume, error) {
	b, err := os.ReadFile(d.volumesPath(spec.ID))
	if errors.Is(err, os.ErrNotExist) {
		return spec.Volumes, nil
	}
	if err != nil {
		return nil, err
	}
	var vols []driver.Volume
	if err := json.Unmarshal(b, &vols); err != nil {
		return nil, fmt.Errorf("%s: %w", d.volumesPath(spec.ID), err)
	}
	return vols, nil
}

func volumeDir(p instancePaths, volumeID string) string {
	return filepath.Join(p.dir, "volumes", volumeID)
}

// volumeMounts returns the bind mounts of the container's volumes.
func volumeMounts(p instancePaths, vols []driver.Volume) []specs.Mount {
	var out []specs.Mount
	for _, v := range vols {
		if v.Path == "" {
			continue
		}
		out = append(out, specs.Mount{Destination: v.Path, Type: "bind", Source: volumeDir(p, v.ID),
			Options: []string{"rbind", "rprivate", "nosuid", "nodev"}})
	}
	return out
}

// mountVolumes makes each volume's filesystem (on first use) and mounts
// it at its host directory.
func mountVolumes(ctx context.Context, p instancePaths, vols []driver.Volume, ids idMap) error {
	for _, v := range vols {
		if v.Path == "" {
			continue
		}
		dir := volumeDir(p, v.ID)
		// Searchable, not listable: a container's root is an unprivileged
		// host user that must reach the mount below it.
		if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
		if mounted, err := isMounted(dir); err != nil || mounted {
			if err != nil {
				return err
			}
			continue
		}
		if v.Device == "" {
			return fmt.Errorf("volume %s: no block device", v.ID)
		}
		if err := ensureFilesystem(ctx, v.Device, ids); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
		if err := unix.Mount(v.Device, dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("volume %s: mount %s: %w", v.ID, v.Device, err)
		}
		if err := os.Chown(dir, ids.root(), ids.root()); err != nil {
			return fmt.Errorf("volume %s: %w", v.ID, err)
		}
	}
	return nil
}

// unmountVolumes unmounts every volume of the instance from the host.
func unmountVolumes(p instancePaths) error {
	ents, err := os.ReadDir(filepath.Join(p.dir, "volumes"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, unmountAll(filepath.Join(p.dir, "volumes", e.Name())))
	}
	return errors.Join(errs...)
}

// ensureFilesystem makes an ext4 filesystem on dev unless it holds one;
// a device holding another filesystem is refused, never overwritten.
func ensureFilesystem(ctx context.Context, dev string, ids idMap) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "blkid", "-p", "-o", "value", "-s", "TYPE", "--", dev)
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		if t := strings.TrimSpace(out.String()); t != "ext4" {
			return fmt.Errorf("%s holds a %s filesystem, not ext4", dev, t)
		}
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == 2: // nothing found
	default:
		return fmt.Errorf("blkid %s: %w", dev, err)
	}
	owner := strconv.Itoa(ids.root())
	mk := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-E", "root_owner="+owner+":"+owner, "--", dev)
	if b, err := mk.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", dev, err, strings.TrimSpace(string(b)))
	}
	return nil
}

var _ driver.VolumeSetter = (*Driver)(nil)

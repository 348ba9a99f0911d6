package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver"
)

// User namespaces: a container's ids 0-65535 are host ids
// HostIDBase..HostIDBase+65535, so its root is an unprivileged host user.
// All containers of a host share the one range: a range per instance
// would need a copy of every layer per instance (or idmapped mounts,
// which the runc of our hosts cannot set up), and the containers are
// kept apart by their pid, mount and network namespaces and cgroups, not
// by their uids. Layers are extracted once per range with their owners
// shifted, as the variant "u<base>-<size>" of the layer cache
// (<Dir>/layers/<hex>-u<base>-<size>); the unshifted extraction
// (<Dir>/layers/<hex>) serves instances created without a user
// namespace, which keep their model until they are recreated.

// Defaults of the user namespace mapping.
const (
	DefaultHostIDBase = 100000
	idMapSize         = 65536
	// overflowID is the container id that ids outside the range become
	// (nobody, nogroup), as the kernel shows unmapped ids.
	overflowID = 65534
)

// idMap is the mapping of a container's uids and gids to host ids. The
// zero value maps nothing: the container runs in the host's user
// namespace.
type idMap struct {
	// HostID is the host id of the container's id 0; Size is the number
	// of ids mapped, 0 for no user namespace.
	HostID, Size uint32
}

// enabled reports whether the container gets a user namespace.
func (m idMap) enabled() bool { return m.Size > 0 }

// host returns the host id of container id, or of nobody when id is
// outside the mapped range.
func (m idMap) host(id int) int {
	if !m.enabled() {
		return id
	}
	if id < 0 || id >= int(m.Size) {
		id = overflowID
	}
	return int(m.HostID) + id
}

// root is the host uid (and gid) of the container's root.
func (m idMap) root() int { return m.host(0) }

// specMappings returns the OCI uid and gid mappings of m.
func (m idMap) specMappings() []specs.LinuxIDMapping {
	if !m.enabled() {
		return nil
	}
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.HostID, Size: m.Size}}
}

// variant names the extraction of layers for m (see blobcache.Derived):
// "u<HostID>-<Size>", or "" for no user namespace.
func (m idMap) variant() string {
	if !m.enabled() {
		return ""
	}
	return fmt.Sprintf("u%d-%d", m.HostID, m.Size)
}

// parseVariant returns the mapping that variant names; it refuses what
// idMap.variant does not make.
func parseVariant(variant string) (idMap, error) {
	if variant == "" {
		return idMap{}, nil
	}
	var m idMap
	n, err := fmt.Sscanf(variant, "u%d-%d", &m.HostID, &m.Size)
	if err != nil || n != 2 || m.Size == 0 || m.variant() != variant {
		return idMap{}, fmt.Errorf("layer variant %q: want u<host id>-<size>", variant)
	}
	return m, nil
}

// newIDMap checks a configured base.
func newIDMap(base uint32) (idMap, error) {
	if base == 0 {
		base = DefaultHostIDBase
	}
	if base < idMapSize {
		return idMap{}, fmt.Errorf("container driver: HostIDBase %d overlaps the host's own users (want at least %d)", base, idMapSize)
	}
	if uint64(base)+idMapSize > 1<<32-1 {
		return idMap{}, fmt.Errorf("container driver: HostIDBase %d leaves no room for %d ids", base, idMapSize)
	}
	return idMap{HostID: base, Size: idMapSize}, nil
}

// bundleIDMap returns the mapping an instance's existing bundle was
// written with; ok is false if it has no bundle yet. A bundle from before
// user namespaces has no mapping: that instance keeps running as host
// root, on the unshifted layers.
func bundleIDMap(config string) (m idMap, ok bool, err error) {
	data, err := os.ReadFile(config)
	if errors.Is(err, os.ErrNotExist) {
		return idMap{}, false, nil
	}
	if err != nil {
		return idMap{}, false, fmt.Errorf("read bundle: %w", err)
	}
	var cfg struct {
		Linux *struct {
			UIDMappings []specs.LinuxIDMapping `json:"uidMappings"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return idMap{}, false, fmt.Errorf("parse %s: %w", config, err)
	}
	if cfg.Linux == nil || len(cfg.Linux.UIDMappings) == 0 {
		return idMap{}, true, nil
	}
	u := cfg.Linux.UIDMappings[0]
	if len(cfg.Linux.UIDMappings) != 1 || u.ContainerID != 0 || u.Size == 0 {
		return idMap{}, false, fmt.Errorf("%s: unexpected uid mappings %+v", config, cfg.Linux.UIDMappings)
	}
	return idMap{HostID: u.HostID, Size: u.Size}, true, nil
}

// instanceIDMap is the mapping of an instance: its bundle's, else that
// of a new instance.
func (d *Driver) instanceIDMap(ctx context.Context, p instancePaths, spec driver.Spec) (idMap, error) {
	m, ok, err := bundleIDMap(p.config)
	if err != nil || ok {
		return m, err
	}
	return d.newInstanceIDMap(ctx, spec), nil
}

// prepareInstanceDirs makes the instance's directories, with the upper
// directory (the root of the container's file system) owned by the
// container's root. The path down to the root file system must be
// searchable by that user, since runc sets up the mounts from inside the
// user namespace: Dir and Dir/instances are made 0711 (searchable, not
// listable), each ancestor of Dir must be searchable by others, and the
// instance directory is 0710 with the container root's group, so other
// host users cannot reach the container's files in the upper directory.
func (d *Driver) prepareInstanceDirs(id string, m idMap) error {
	if _, err := d.instances.Create(id, "bundle", "upper", "work", "rootfs"); err != nil {
		return err
	}
	p := d.paths(id)
	if !m.enabled() {
		return nil
	}
	if err := os.Lchown(p.upper, m.root(), m.root()); err != nil {
		return fmt.Errorf("chown upper directory: %w", err)
	}
	if err := os.Chmod(p.upper, 0o755); err != nil {
		return err
	}
	for _, dir := range []string{d.cfg.Dir, filepath.Dir(p.dir), p.rootfs} {
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	}
	if err := os.Lchown(p.dir, 0, m.root()); err != nil {
		return fmt.Errorf("chown instance directory: %w", err)
	}
	if err := os.Chmod(p.dir, 0o710); err != nil {
		return err
	}
	for dir := filepath.Dir(d.cfg.Dir); ; dir = filepath.Dir(dir) {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		if st.Mode&0o001 == 0 {
			return fmt.Errorf("%s (mode %#o) is not searchable by others: containers' root (host uid %d) must reach their root file systems below it (chmod o+x)", dir, st.Mode&0o7777, m.root())
		}
		if dir == "/" {
			return nil
		}
	}
}

// newInstanceIDMap is the mapping of a new instance. runc before 1.2
// cannot exec into a container whose user namespace does not own the
// network namespace it joined (see runtime.go), so with such a runc an
// instance that joins a network namespace runs without a user namespace,
// still under the seccomp filter; crun gives it one.
func (d *Driver) newInstanceIDMap(ctx context.Context, spec driver.Spec) idMap {
	if !d.idMap.enabled() || spec.NetNS == "" {
		return d.idMap
	}
	if rt := d.runtimeInfo(ctx); !rt.execsIntoJoinedNetNS() {
		d.log.Warn("the OCI runtime cannot exec into a user namespace joined to the host's network namespace (use crun, or runc 1.2 or later): the container runs without one",
			"id", spec.ID, "runtime", rt.String())
		return idMap{}
	}
	return d.idMap
}

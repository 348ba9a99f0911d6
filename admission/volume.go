package admission

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Volumes: a StoragePool is admin-made; a Volume names its pool and, for
// local pools, the host its file lives on (chosen here when not given); a
// VolumeSnapshot names a volume of its project. An instance holds the
// store claim api.VolumeClaim of every volume in its spec.volumes, taken
// in the transaction that writes the instance, so a volume is held by
// one instance at a time however attaches race; deleting the instance
// releases the claims in its delete transaction (detach, never delete).

// FinalizerVolume holds a deleted volume or snapshot until its agent has
// removed the data from the backend.
const FinalizerVolume = "ouro.dev/volume-data"

// ValidateStoragePool admits a pool, new (old nil) or changed. The Ceph
// key is write-only: an update without one keeps the stored key.
func ValidateStoragePool(p, old *api.StoragePool) error {
	s := &p.Spec
	if old != nil {
		if s.Type != old.Spec.Type {
			return Immutable("spec.type")
		}
		if s.Ceph != nil && old.Spec.Ceph != nil && s.Ceph.Key == "" {
			s.Ceph.Key = old.Spec.Ceph.Key
		}
	}
	if s.CapacityGiB < 0 || s.CapacityGiB > 1<<20 {
		return api.Invalid("spec.capacityGiB", "give 1 to 1048576, or 0 for the default 1024", "capacity %d GiB is not valid", s.CapacityGiB)
	}
	switch s.Type {
	case api.PoolLocal:
		if s.Ceph != nil {
			return api.Invalid("spec.ceph", "leave it out for a local pool", "a local pool has no Ceph settings")
		}
	case api.PoolCeph:
		if err := validateCeph(s.Ceph); err != nil {
			return err
		}
	default:
		return api.Invalid("spec.type", "use local or ceph", "pool type %q is not valid", truncate(s.Type, 40))
	}
	p.Status = api.StoragePoolStatus{KeySet: s.Ceph != nil && s.Ceph.Key != ""}
	return nil
}

func validateCeph(c *api.CephPool) error {
	if c == nil {
		return api.Invalid("spec.ceph", "give monitors, pool and key", "a ceph pool needs its Ceph settings")
	}
	if len(c.Monitors) == 0 || len(c.Monitors) > 16 {
		return api.Invalid("spec.ceph.monitors", "give 1 to 16 monitor addresses, host or host:port", "%d monitors", len(c.Monitors))
	}
	for i, m := range c.Monitors {
		if err := validateMonitor(m); err != nil {
			return api.Invalid(fmt.Sprintf("spec.ceph.monitors[%d]", i), "give host or host:port, e.g. 10.0.0.5:6789", "monitor %q: %v", truncate(m, 80), err)
		}
	}
	if !validCephName(c.Pool) {
		return api.Invalid("spec.ceph.pool", "name an existing RADOS pool (letters, digits, . _ -)", "pool %q is not valid", truncate(c.Pool, 80))
	}
	if c.User != "" && !validCephName(c.User) {
		return api.Invalid("spec.ceph.user", "give the cephx user without client., e.g. admin", "user %q is not valid", truncate(c.User, 80))
	}
	if c.Key == "" {
		return api.Invalid("spec.ceph.key", "give the user's cephx key (the key = line of its keyring)", "key is required")
	}
	if b, err := base64.StdEncoding.DecodeString(c.Key); err != nil || len(b) < 16 {
		return api.Invalid("spec.ceph.key", "give the base64 key of the keyring's key = line", "key is not a cephx key")
	}
	return nil
}

func validateMonitor(m string) error {
	host, port := m, ""
	if h, p, err := net.SplitHostPort(m); err == nil {
		host, port = h, p
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("bad port")
		}
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /,;:") || strings.HasPrefix(host, "-") {
		return errors.New("bad host")
	}
	return nil
}

func validCephName(s string) bool {
	if s == "" || len(s) > 100 || strings.HasPrefix(s, "-") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ValidateVolumeCreate admits a new volume: an existing pool, a size in
// (0, capacity], at most one source, of this project and pool, that fits,
// and for local pools the host (the snapshot's, the one asked for, or a
// Ready host with the fewest volumes of the pool).
func (a *Admitter) ValidateVolumeCreate(ctx context.Context, v *api.Volume) error {
	s := &v.Spec
	pool, err := a.pool(ctx, s.Pool)
	if err != nil {
		return err
	}
	if err := checkVolumeSize(s.SizeBytes, pool); err != nil {
		return err
	}
	if s.FromSnapshot != "" && s.FromImage != "" {
		return api.Invalid("spec.fromImage", "give fromSnapshot or fromImage, not both", "two sources")
	}
	if s.FromSnapshot != "" {
		snap, err := a.readySnapshot(ctx, v.Metadata.Project, s.FromSnapshot)
		if err != nil {
			return err
		}
		if snap.Status.Pool != s.Pool {
			return api.Invalid("spec.pool", fmt.Sprintf("use pool %s, the snapshot's", snap.Status.Pool), "snapshot %q is in pool %s", s.FromSnapshot, snap.Status.Pool)
		}
		if snap.Status.SizeBytes > s.SizeBytes {
			return api.Invalid("spec.sizeBytes", fmt.Sprintf("give at least %d", snap.Status.SizeBytes), "snapshot %q holds %d bytes", s.FromSnapshot, snap.Status.SizeBytes)
		}
		if s.Host != "" && s.Host != snap.Status.Host {
			return api.Invalid("spec.host", fmt.Sprintf("leave it out, or give %s", snap.Status.Host), "snapshot %q lives on host %s", s.FromSnapshot, snap.Status.Host)
		}
		s.Host = snap.Status.Host
	}
	if s.FromImage != "" {
		img, err := a.ResolveImage(ctx, v.Metadata.Project, s.FromImage)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Field == "spec.image" {
				ae.Field = "spec.fromImage"
			}
			return err
		}
		if img.Spec.Disk == nil {
			return api.Invalid("spec.fromImage", "name a qcow2 or raw disk image", "image %q has no disk", s.FromImage)
		}
		s.FromImage = img.Metadata.Project + "/" + img.Metadata.Name
	}
	if pool.Spec.Type == api.PoolCeph {
		if s.Host != "" {
			return api.Invalid("spec.host", "leave it out: any host reaches a ceph pool", "a ceph volume has no host")
		}
	} else if err := a.chooseVolumeHost(ctx, v); err != nil {
		return err
	}
	if !slices.Contains(v.Metadata.Finalizers, FinalizerVolume) {
		v.Metadata.Finalizers = append(v.Metadata.Finalizers, FinalizerVolume)
	}
	v.Status = api.VolumeStatus{State: api.VolumeCreating}
	return nil
}

func checkVolumeSize(size int64, pool *api.StoragePool) error {
	c := pool.Spec.Capacity()
	if size <= 0 || size > c {
		return api.Invalid("spec.sizeBytes", fmt.Sprintf("give 1 to %d bytes (the capacity of pool %s), e.g. --size 10G", c, pool.Metadata.Name), "size %d is not valid", size)
	}
	return nil
}

func (a *Admitter) pool(ctx context.Context, name string) (*api.StoragePool, error) {
	const hint = "name a storage pool: ouro pool list"
	if name == "" {
		return nil, api.Invalid("spec.pool", hint, "pool is required")
	}
	if e := api.ValidateName("spec.pool", name); e != nil {
		return nil, e
	}
	var p api.StoragePool
	if err := a.st.Get(ctx, api.StoragePoolKind, "", name, &p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.Invalid("spec.pool", hint, "storage pool %q does not exist", name)
		}
		return nil, fmt.Errorf("get storage pool %s: %w", name, err)
	}
	return &p, nil
}

func (a *Admitter) readySnapshot(ctx context.Context, project, name string) (*api.VolumeSnapshot, error) {
	var snap api.VolumeSnapshot
	if err := a.st.Get(ctx, api.VolumeSnapshotKind, project, name, &snap); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.Invalid("spec.fromSnapshot", "name a snapshot of this project: ouro snapshot list", "snapshot %q does not exist", name)
		}
		return nil, fmt.Errorf("get snapshot %s: %w", name, err)
	}
	if snap.Status.State != api.SnapshotReady || snap.Metadata.DeletionTimestamp != nil {
		return nil, api.Invalid("spec.fromSnapshot", "wait until the snapshot is ready", "snapshot %q is %s", name, orNone(snap.Status.State))
	}
	return &snap, nil
}

func orNone(s string) string {
	if s == "" {
		return "not ready"
	}
	return s
}

// chooseVolumeHost checks or picks the host of a local volume.
func (a *Admitter) chooseVolumeHost(ctx context.Context, v *api.Volume) error {
	if v.Spec.Host != "" {
		var h api.Host
		if err := a.st.Get(ctx, api.HostKind, "", v.Spec.Host, &h); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return api.Invalid("spec.host", "name a host: ouro host list", "host %q does not exist", v.Spec.Host)
			}
			return fmt.Errorf("get host %s: %w", v.Spec.Host, err)
		}
		return nil
	}
	hosts, err := list(ctx, a.st, api.HostKind, "", 0, func(o api.Object) bool {
		h := o.(*api.Host)
		return h.Status.Phase == api.HostReady && !h.Spec.Unschedulable
	})
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Field: "spec.host",
			Message: "no Ready host can hold a local volume", Hint: "join a host, or wait for one to be Ready"}
	}
	vols, err := list(ctx, a.st, api.VolumeKind, "", 0, func(o api.Object) bool { return o.(*api.Volume).Spec.Pool == v.Spec.Pool })
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, o := range vols {
		count[o.(*api.Volume).Spec.Host]++
	}
	sort.SliceStable(hosts, func(i, j int) bool {
		return count[hosts[i].Meta().Name] < count[hosts[j].Meta().Name]
	})
	v.Spec.Host = hosts[0].Meta().Name
	return nil
}

// ValidateVolumeUpdate admits a change: only the size, and only up.
func (a *Admitter) ValidateVolumeUpdate(ctx context.Context, old, v *api.Volume) error {
	o, n := &old.Spec, &v.Spec
	switch {
	case n.Pool != o.Pool:
		return Immutable("spec.pool")
	case n.FromSnapshot != o.FromSnapshot:
		return Immutable("spec.fromSnapshot")
	case n.FromImage != o.FromImage:
		return Immutable("spec.fromImage")
	case n.Host == "":
		n.Host = o.Host
	}
	if n.Host != o.Host {
		return Immutable("spec.host")
	}
	if old.Metadata.DeletionTimestamp != nil && n.SizeBytes != o.SizeBytes {
		return api.Conflict("volume %q is being deleted", old.Metadata.Name)
	}
	if n.SizeBytes < o.SizeBytes {
		return api.Invalid("spec.sizeBytes", fmt.Sprintf("give at least %d: volumes grow, never shrink", o.SizeBytes), "size %d is smaller than %d", n.SizeBytes, o.SizeBytes)
	}
	pool, err := a.pool(ctx, n.Pool)
	if err != nil {
		return err
	}
	return checkVolumeSize(n.SizeBytes, pool)
}

// ValidateVolumeStatus admits a status write: by the server, or by the
// host the volume lives on (any host for volumes without one).
func ValidateVolumeStatus(id *auth.Identity, old, v *api.Volume) error {
	if id.Host != "" && old.Spec.Host != "" && id.Host != old.Spec.Host {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("host %s may not write the status of a volume on host %s", id.Host, old.Spec.Host)}
	}
	if id.Host != "" {
		// attachedTo is the volume controller's, from the instances; an
		// agent reporting from an older read must not undo it.
		v.Status.AttachedTo, v.Status.Device = old.Status.AttachedTo, old.Status.Device
		if v.Status.State == api.VolumeAvailable || v.Status.State == api.VolumeInUse {
			v.Status.State = api.VolumeAvailable
			if v.Status.AttachedTo != "" {
				v.Status.State = api.VolumeInUse
			}
		}
	}
	switch v.Status.State {
	case api.VolumeCreating, api.VolumeAvailable, api.VolumeAttaching, api.VolumeInUse,
		api.VolumeDetaching, api.VolumeDeleting, api.VolumeError, VolumeDeleted:
		return nil
	}
	return api.Invalid("status.state", "use creating, available, attaching, in-use, detaching, deleting, deleted or error", "state %q is not valid", truncate(v.Status.State, 40))
}

// VolumeDeleted is the state an agent reports when a deleted volume's (or
// snapshot's) data is gone; the volume controller then removes the object.
const VolumeDeleted = "deleted"

// ValidateSnapshotCreate admits a snapshot of a volume of the project
// whose backend holds it, copying what its agent needs.
func (a *Admitter) ValidateSnapshotCreate(ctx context.Context, s *api.VolumeSnapshot) error {
	var v api.Volume
	if err := a.st.Get(ctx, api.VolumeKind, s.Metadata.Project, s.Spec.Volume, &v); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid("spec.volume", "name a volume of this project: ouro volume list", "volume %q does not exist", s.Spec.Volume)
		}
		return fmt.Errorf("get volume %s: %w", s.Spec.Volume, err)
	}
	if v.Metadata.DeletionTimestamp != nil || v.Status.ID == "" || v.Status.State == api.VolumeCreating || v.Status.State == api.VolumeError {
		return api.Invalid("spec.volume", "wait until the volume is available", "volume %q is %s", s.Spec.Volume, orNone(v.Status.State))
	}
	if !slices.Contains(s.Metadata.Finalizers, FinalizerVolume) {
		s.Metadata.Finalizers = append(s.Metadata.Finalizers, FinalizerVolume)
	}
	s.Status = api.VolumeSnapshotStatus{State: api.SnapshotCreating, VolumeID: v.Status.ID,
		SizeBytes: v.Spec.SizeBytes, Pool: v.Spec.Pool, Host: v.Spec.Host}
	return nil
}

// ValidateSnapshotUpdate refuses every change of the spec.
func ValidateSnapshotUpdate(old, s *api.VolumeSnapshot) error {
	if s.Spec != old.Spec {
		return Immutable("spec.volume")
	}
	return nil
}

// ValidateSnapshotStatus admits a status write by the server or the
// volume's host.
func ValidateSnapshotStatus(id *auth.Identity, old, s *api.VolumeSnapshot) error {
	if id.Host != "" && old.Status.Host != "" && id.Host != old.Status.Host {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("host %s may not write the status of a snapshot on host %s", id.Host, old.Status.Host)}
	}
	if id.Host != "" {
		// What the server copied at create is not the agent's to change.
		s.Status.VolumeID, s.Status.Pool, s.Status.Host = old.Status.VolumeID, old.Status.Pool, old.Status.Host
	}
	switch s.Status.State {
	case api.SnapshotCreating, api.SnapshotReady, api.SnapshotDeleting, api.SnapshotError, VolumeDeleted:
		return nil
	}
	return api.Invalid("status.state", "use creating, ready, deleting, deleted or error", "state %q is not valid", truncate(s.Status.State, 40))
}

// beforeDeleteVolume refuses deleting a volume an instance holds or
// snapshots depend on, naming them.
func (a *Admitter) beforeDeleteVolume(ctx context.Context, st store.Interface, obj api.Object) error {
	v := obj.(*api.Volume)
	what := "volume " + v.Metadata.Name
	holders, err := st.ListClaims(ctx, api.VolumeClaim(v.Metadata.Project, v.Metadata.Name))
	if err != nil {
		return fmt.Errorf("read claims of %s: %w", what, err)
	}
	for _, key := range holders {
		name := key[strings.LastIndexByte(key, '/')+1:]
		return &api.Error{Status: http.StatusConflict, Code: api.CodeInUse,
			Message: fmt.Sprintf("%s is attached to instance %s", what, name),
			Hint:    fmt.Sprintf("detach it first: ouro volume detach %s", v.Metadata.Name)}
	}
	snaps, err := list(ctx, st, api.VolumeSnapshotKind, v.Metadata.Project, 0, func(o api.Object) bool {
		return o.(*api.VolumeSnapshot).Spec.Volume == v.Metadata.Name
	})
	return refuseUsed(what, snaps, err)
}

// validateInstanceVolumes checks spec.volumes of an instance (old is nil
// at create): volumes of the project, each once, at most one boot volume
// (set at create only), absolute clean container paths, and every local
// volume on one host, to which the instance is pinned.
func (a *Admitter) validateInstanceVolumes(ctx context.Context, in, old *api.Instance) error {
	vols := in.Spec.Volumes
	if len(vols) > 9 {
		return api.Invalid("spec.volumes", "attach at most 8 data volumes and a boot volume", "%d volumes", len(vols))
	}
	host, boots := "", 0
	for i, iv := range vols {
		field := fmt.Sprintf("spec.volumes[%d]", i)
		if e := api.ValidateName(field+".name", iv.Name); e != nil {
			return e
		}
		if slices.ContainsFunc(vols[:i], func(o api.InstanceVolume) bool { return o.Name == iv.Name }) {
			return api.Invalid(field+".name", "name each volume once", "volume %q given twice", iv.Name)
		}
		if iv.Boot {
			boots++
			if iv.Path != "" {
				return api.Invalid(field+".path", "a boot volume has no path", "boot volume with a path")
			}
		}
		if iv.Path != "" && (!path.IsAbs(iv.Path) || path.Clean(iv.Path) != iv.Path || iv.Path == "/" || len(iv.Path) > 256) {
			return api.Invalid(field+".path", "give an absolute clean path other than /, e.g. /data", "path %q is not valid", truncate(iv.Path, 80))
		}
		var v api.Volume
		if err := a.st.Get(ctx, api.VolumeKind, in.Metadata.Project, iv.Name, &v); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return api.Invalid(field+".name", "name a volume of this project: ouro volume list", "volume %q does not exist", iv.Name)
			}
			return fmt.Errorf("get volume %s: %w", iv.Name, err)
		}
		if v.Metadata.DeletionTimestamp != nil {
			return api.Invalid(field+".name", "name another volume", "volume %q is being deleted", iv.Name)
		}
		if v.Spec.Host != "" {
			if host != "" && host != v.Spec.Host {
				return api.Invalid(field+".name", "use local volumes of one host", "volume %q lives on host %s, another on %s", iv.Name, v.Spec.Host, host)
			}
			host = v.Spec.Host
		}
	}
	if boots > 1 {
		return api.Invalid("spec.volumes", "mark one volume :boot", "%d boot volumes", boots)
	}
	if old != nil {
		wasBoot := slices.IndexFunc(old.Spec.Volumes, func(v api.InstanceVolume) bool { return v.Boot })
		isBoot := slices.IndexFunc(vols, func(v api.InstanceVolume) bool { return v.Boot })
		if (wasBoot < 0) != (isBoot < 0) || (wasBoot >= 0 && old.Spec.Volumes[wasBoot] != vols[isBoot]) {
			return Immutable("spec.volumes (boot volume)")
		}
		if host != "" && old.Status.Host != "" && old.Status.Host != host {
			return api.Invalid("spec.volumes", "attach volumes of the instance's host "+old.Status.Host, "a volume lives on host %s", host)
		}
	}
	if host != "" {
		if in.Spec.Placement == nil {
			in.Spec.Placement = &api.Placement{}
		}
		if in.Spec.Placement.Host != "" && in.Spec.Placement.Host != host {
			return api.Invalid("spec.placement.host", "leave it out: local volumes pin the instance to their host", "volumes live on host %s", host)
		}
		in.Spec.Placement.Host = host
	}
	return nil
}

// volumeClaims returns the claims of an instance's volumes.
func volumeClaims(in *api.Instance) []string {
	out := make([]string, 0, len(in.Spec.Volumes))
	for _, v := range in.Spec.Volumes {
		out = append(out, api.VolumeClaim(in.Metadata.Project, v.Name))
	}
	return out
}

// volumeInUse turns a taken volume claim into the error naming the
// volume and its holder; other errors pass unchanged.
func volumeInUse(in *api.Instance, err error) error {
	var ce *store.ClaimError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Claim, "volume/") {
		return err
	}
	name := ce.Claim[strings.LastIndexByte(ce.Claim, '/')+1:]
	field := "spec.volumes"
	if i := slices.IndexFunc(in.Spec.Volumes, func(v api.InstanceVolume) bool { return v.Name == name }); i >= 0 {
		field = fmt.Sprintf("spec.volumes[%d].name", i)
	}
	return &api.Error{Status: http.StatusConflict, Code: api.CodeInUse, Field: field,
		Message: fmt.Sprintf("volume %s is in use by instance %s", name, ce.HolderName()),
		Hint:    "detach it from that instance first"}
}

// UpdateInstanceVolumes stores an updated instance, taking the claims of
// volumes it now uses and releasing those it no longer does, in one
// transaction.
func (a *Admitter) UpdateInstanceVolumes(ctx context.Context, st store.Interface, old, in *api.Instance) error {
	add, release := volumeClaims(in), volumeClaims(old)
	if slices.Equal(add, release) {
		return st.Update(ctx, in)
	}
	return volumeInUse(in, st.UpdateClaims(ctx, in, add, release))
}

// validateVolumeTemplates checks a group's volume templates: only for
// stateful groups, unique names that make valid volume names, existing
// pools, sizes they hold, clean paths and at most one boot volume.
func (a *Admitter) validateVolumeTemplates(ctx context.Context, g *api.InstanceGroup) error {
	ts := g.Spec.VolumeTemplates
	if len(ts) == 0 {
		return nil
	}
	if !g.Spec.Stateful {
		return api.Invalid("spec.volumeTemplates", "set spec.stateful: members get their volumes back by name", "volume templates need a stateful group")
	}
	if len(ts) > 8 {
		return api.Invalid("spec.volumeTemplates", "give at most 8", "%d volume templates", len(ts))
	}
	boots := 0
	for i, t := range ts {
		field := fmt.Sprintf("spec.volumeTemplates[%d]", i)
		if e := api.ValidateName(field+".name", t.Name); e != nil {
			return e
		}
		longest := api.MemberVolume(g.MemberName(api.MaxGroupCount-1), t.Name)
		if e := api.ValidateName(field+".name", longest); e != nil {
			return api.Invalid(field+".name", "use a shorter name: volumes are named <group>-<index>-<template>", "volume name %q is too long", longest)
		}
		if slices.ContainsFunc(ts[:i], func(o api.VolumeTemplate) bool { return o.Name == t.Name }) {
			return api.Invalid(field+".name", "name each template once", "template %q given twice", t.Name)
		}
		pool, err := a.pool(ctx, t.Pool)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Field == "spec.pool" {
				ae.Field = field + ".pool"
			}
			return err
		}
		if err := checkVolumeSize(t.SizeBytes, pool); err != nil {
			var ae *api.Error
			if errors.As(err, &ae) {
				ae.Field = field + ".sizeBytes"
			}
			return err
		}
		if t.Boot {
			boots++
			if t.Path != "" {
				return api.Invalid(field+".path", "a boot volume has no path", "boot volume with a path")
			}
		}
		if t.Path != "" && (!path.IsAbs(t.Path) || path.Clean(t.Path) != t.Path || t.Path == "/" || len(t.Path) > 256) {
			return api.Invalid(field+".path", "give an absolute clean path other than /, e.g. /data", "path %q is not valid", truncate(t.Path, 80))
		}
	}
	if boots > 1 {
		return api.Invalid("spec.volumeTemplates", "mark one template boot", "%d boot templates", boots)
	}
	return nil
}

// EnsureMemberVolume makes the volume name of project from template t
// unless it exists (a replaced member gets its own volume back). A volume
// being deleted is an error: the member must not start without its data.
func (a *Admitter) EnsureMemberVolume(ctx context.Context, st store.Interface, project, name string, t api.VolumeTemplate) error {
	var cur api.Volume
	err := st.Get(ctx, api.VolumeKind, project, name, &cur)
	switch {
	case err == nil:
		if cur.Metadata.DeletionTimestamp != nil {
			return fmt.Errorf("volume %s is being deleted", name)
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("get volume %s: %w", name, err)
	}
	v := &api.Volume{Kind: api.VolumeKind.Name, Metadata: api.ObjectMeta{Name: name, Project: project},
		Spec: api.VolumeSpec{SizeBytes: t.SizeBytes, Pool: t.Pool}}
	if err := a.ValidateVolumeCreate(ctx, v); err != nil {
		return err
	}
	if _, err := st.Create(ctx, v, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

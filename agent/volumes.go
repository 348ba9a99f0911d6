package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/volumes"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/volume"
)

// newVolumes returns the loop keeping the host's volumes, nil without
// Config.VolumeDir.
func (a *Agent) newVolumes() *volumes.Loop {
	if a.cfg.VolumeDir == "" {
		return nil
	}
	a.pools = &volumes.Pools{Dir: a.cfg.VolumeDir, Ceph: a.cephBackend}
	return volumes.New(volumes.Config{
		Host:     a.name(),
		API:      &a.sess,
		Backends: a.pools,
		Images:   volumeImages{a},
		TempDir:  a.cfg.VolumeDir,
		Logger:   a.log,
	})
}

// cephBackend opens a ceph pool with Config.CephVolumes, handing it the
// pool with its key, which the API returns only from
// /v1/storagepools/{name}/key (to hosts). A backend is kept for the
// pool's resourceVersion: a changed pool (a new key, other monitors) is
// opened again.
func (a *Agent) cephBackend(pool *api.StoragePool) (volume.Backend, error) {
	if a.cfg.CephVolumes == nil || pool.Spec.Ceph == nil {
		return nil, fmt.Errorf("storage pool %s: this host has no ceph backend", pool.Metadata.Name)
	}
	a.cephMu.Lock()
	defer a.cephMu.Unlock()
	if c, ok := a.ceph[pool.Metadata.Name]; ok && c.version == pool.Metadata.ResourceVersion {
		return c.backend, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := a.sess.Client().StoragePoolKey(ctx, pool.Metadata.Name)
	if err != nil {
		return nil, fmt.Errorf("storage pool %s: key: %w", pool.Metadata.Name, err)
	}
	cp := *pool
	ceph := *pool.Spec.Ceph
	ceph.Key = key
	cp.Spec.Ceph = &ceph
	b, err := a.cfg.CephVolumes(&cp)
	if err != nil {
		return nil, err
	}
	if a.ceph == nil {
		a.ceph = map[string]cephPool{}
	}
	a.ceph[pool.Metadata.Name] = cephPool{version: pool.Metadata.ResourceVersion, backend: b}
	return b, nil
}

// cephPool is an opened ceph pool and the version of the pool object it
// was opened from.
type cephPool struct {
	version string
	backend volume.Backend
}

// lockClient is who this host is to a shared pool's locks and fences:
// its address, the source address of its Ceph connections, which is what
// the controller blocklists when the host is lost.
func (a *Agent) lockClient() string { return a.hostFacts().address }

// volumeImages fetches image disks for volumes made from images, with the
// host's credentials.
type volumeImages struct{ a *Agent }

// FetchDisk writes the disk blob of img to dst.
func (v volumeImages) FetchDisk(ctx context.Context, img *api.Image, dst string) (string, error) {
	if img.Spec.Disk == nil {
		return "", fmt.Errorf("image %s/%s has no disk", img.Metadata.Project, img.Metadata.Name)
	}
	rc, err := v.a.Blobs().Open(ctx, img.Spec.Disk.Digest)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return img.Spec.Format, nil
}

// errVolumeWait is returned while a volume an instance uses is not made
// yet: the instance waits, without failing, and is looked at again soon.
var errVolumeWait = errors.New("waiting for volume")

// volumeRetry is how soon an instance waiting for a volume is looked at
// again.
const volumeRetry = 2 * time.Second

// lockRetry is how soon an instance waiting for another host's lock on
// its volume is looked at again: the lock goes when that host unlocks or
// the controller fences it, and a member replaced after its host was lost
// waits for exactly that.
const lockRetry = 500 * time.Millisecond

// resolveVolume returns how driver d attaches volume iv of inst: a
// blockdev for VMs, a mapped host block device for the others.
func (a *Agent) resolveVolume(ctx context.Context, inst *api.Instance, iv api.InstanceVolume, vm bool) (driver.Volume, error) {
	if a.pools == nil {
		return driver.Volume{}, fmt.Errorf("volume %s: this host keeps no volumes", iv.Name)
	}
	c := a.sess.Client()
	var v api.Volume
	if err := c.Get(ctx, api.VolumeKind, inst.Metadata.Project, iv.Name, &v); err != nil {
		return driver.Volume{}, fmt.Errorf("volume %s: %w", iv.Name, err)
	}
	switch v.Status.State {
	case api.VolumeAvailable, api.VolumeInUse, api.VolumeAttaching, api.VolumeDetaching:
	default:
		return driver.Volume{}, fmt.Errorf("volume %s is %q: %w", iv.Name, v.Status.State, errVolumeWait)
	}
	var pool api.StoragePool
	if err := c.Get(ctx, api.StoragePoolKind, "", v.Spec.Pool, &pool); err != nil {
		return driver.Volume{}, fmt.Errorf("volume %s: pool %s: %w", iv.Name, v.Spec.Pool, err)
	}
	b, err := a.pools.Backend(&pool)
	if err != nil {
		return driver.Volume{}, err
	}
	if err := a.lockVolume(ctx, &pool, b, &v); err != nil {
		return driver.Volume{}, err
	}
	out := driver.Volume{ID: v.Status.ID, Boot: iv.Boot, Path: iv.Path}
	var att volume.Attachment
	if vm {
		att, err = b.Blockdev(ctx, v.Status.ID)
	} else {
		att, err = b.MapBlock(ctx, v.Status.ID)
	}
	if err != nil {
		return driver.Volume{}, fmt.Errorf("volume %s: %w", iv.Name, err)
	}
	out.BlockdevJSON, out.Objects, out.Device = att.BlockdevJSON, att.Objects, att.Device
	return out, nil
}

// lockVolume takes the backend lock of a volume of a shared pool for this
// host before its data path is opened here: the etcd claim says which
// instance may use the volume, the lock that no other host still does. A
// volume locked by another host waits (errVolumeWait) until that host
// unlocks it, after its instance let go, or is fenced, after the
// controller declared it lost. Local volumes have no lock (their host is
// the only one that can open them).
func (a *Agent) lockVolume(ctx context.Context, pool *api.StoragePool, b volume.Backend, v *api.Volume) error {
	if pool.Spec.Type != api.PoolCeph {
		return nil
	}
	err := b.Lock(ctx, v.Status.ID, a.lockClient())
	if errors.Is(err, volume.ErrLocked) {
		a.log.Debug("waiting for a volume another host holds", "volume", v.Metadata.Project+"/"+v.Metadata.Name, "err", err)
		return fmt.Errorf("volume %s: %w: %w", v.Metadata.Name, err, errVolumeWait)
	}
	if err != nil {
		return fmt.Errorf("volume %s: lock: %w", v.Metadata.Name, err)
	}
	return nil
}

// releaseVolume undoes this host's hold on a volume an instance of the
// host no longer uses: its host block device (containers) and its lock
// (shared pools). A volume another instance of this host uses now is
// left alone: the mapping and the lock are its.
func (a *Agent) releaseVolume(ctx context.Context, inst *api.Instance, v *api.Volume, unmap bool) {
	if v.Status.ID == "" || a.cache.usesVolume(v.Metadata.Project, v.Metadata.Name, inst.Metadata.UID) {
		return
	}
	var pool api.StoragePool
	if err := a.sess.Client().Get(ctx, api.StoragePoolKind, "", v.Spec.Pool, &pool); err != nil {
		return
	}
	b, err := a.pools.Backend(&pool)
	if err != nil {
		return
	}
	if unmap {
		if err := b.UnmapBlock(ctx, v.Status.ID); err != nil {
			a.log.Warn("unmap volume", "instance", instanceKey(inst), "volume", v.Metadata.Name, "err", err)
			return // the device may still write: keep the lock
		}
	}
	if pool.Spec.Type == api.PoolCeph {
		if err := b.Unlock(ctx, v.Status.ID, a.lockClient()); err != nil {
			a.log.Warn("unlock volume", "instance", instanceKey(inst), "volume", v.Metadata.Name, "err", err)
		}
	}
}

// volumeByID returns the volume of project whose backend id is id.
func (a *Agent) volumeByID(ctx context.Context, project, id string) (*api.Volume, error) {
	vols, _, err := client.ListAll[api.Volume](ctx, a.sess.Client(), api.VolumeKind, project, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range vols {
		if vols[i].Status.ID == id {
			return &vols[i], nil
		}
	}
	return nil, fmt.Errorf("volume %s: %w", id, volume.ErrNotFound)
}

// resolveVolumes resolves every volume of inst for driver d.
func (a *Agent) resolveVolumes(ctx context.Context, inst *api.Instance, d driver.Driver) ([]driver.Volume, error) {
	var out []driver.Volume
	for _, iv := range inst.Spec.Volumes {
		v, err := a.resolveVolume(ctx, inst, iv, d.Name() == api.DriverVM)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// prepareVolumes brings the driver's volumes of the instance in line
// with its spec before a start (and, for drivers that hot-plug, while it
// runs): attach what is missing, detach what is no longer asked for.
func (r *instanceRun) prepareVolumes(ctx context.Context, d driver.Driver) error {
	inst := r.inst
	switch dv := d.(type) {
	case driver.VolumeAttacher:
		have, err := dv.AttachedVolumes(ctx, inst.Metadata.UID)
		if err != nil {
			return err
		}
		var ids []string
		for _, iv := range inst.Spec.Volumes {
			if iv.Boot {
				continue
			}
			v, err := r.a.resolveVolume(ctx, inst, iv, true)
			if err != nil {
				return err
			}
			ids = append(ids, v.ID)
			if slices.ContainsFunc(have, func(h driver.Volume) bool { return h.ID == v.ID }) {
				continue
			}
			if err := dv.AttachVolume(ctx, inst.Metadata.UID, v); err != nil {
				return err
			}
			r.a.event(ctx, inst, api.EventNormal, "VolumeAttached", "volume "+iv.Name+" attached")
		}
		for _, h := range have {
			if h.Boot || slices.Contains(ids, h.ID) {
				continue
			}
			if err := dv.DetachVolume(ctx, inst.Metadata.UID, h.ID); err != nil {
				return err
			}
			if v, err := r.a.volumeByID(ctx, inst.Metadata.Project, h.ID); err == nil {
				r.a.releaseVolume(ctx, inst, v, false)
			}
			r.a.event(ctx, inst, api.EventNormal, "VolumeDetached", "volume "+h.ID+" detached")
		}
	case driver.VolumeSetter:
		vols, err := r.a.resolveVolumes(ctx, inst, d)
		if err != nil {
			return err
		}
		return dv.SetVolumes(ctx, inst.Metadata.UID, vols)
	}
	return nil
}

// volumeErr turns a wait for a volume into a look again soon.
func (r *instanceRun) volumeErr(err error) error {
	if errors.Is(err, errVolumeWait) {
		d := volumeRetry
		if errors.Is(err, volume.ErrLocked) {
			d = lockRetry
		}
		r.requeueAfter(d)
		return nil
	}
	return err
}

// unmapVolumes releases the volumes of a deleted instance: their host
// block device mappings (containers) and their locks (best effort: a
// volume deleted meanwhile has none).
func (a *Agent) unmapVolumes(ctx context.Context, inst *api.Instance) {
	if a.pools == nil || len(inst.Spec.Volumes) == 0 {
		return
	}
	c := a.sess.Client()
	for _, iv := range inst.Spec.Volumes {
		var v api.Volume
		if err := c.Get(ctx, api.VolumeKind, inst.Metadata.Project, iv.Name, &v); err != nil {
			continue
		}
		a.releaseVolume(ctx, inst, &v, inst.Status.Driver != api.DriverVM)
	}
}

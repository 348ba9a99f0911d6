// Package volumes keeps the data of the volumes and snapshots a host is
// responsible for: those of local pools that live on the host, and the
// host-less ones (ceph) that Owner gives it. It lists
// them through the API (poked by watches, and every resync period as a
// backstop), converges each with its pool's volume.Backend and reports
// what the backend holds as the object's status.
//
// Every step is idempotent (the backends are): an agent that dies at any
// line and restarts finds the status it reports from the backend, never
// from memory. For one volume:
//
//	no backend data        → Create (from its snapshot or image) → available
//	spec size > backend's  → Resize                              → available
//	deleted                → Delete (after its snapshots)         → "deleted"
//
// and for one snapshot: Snapshot → ready; deleted → DeleteSnapshot →
// "deleted". The volume controller then removes the deleted objects.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/volume"
)

// API reaches the API server with the host's current credentials.
type API interface {
	Client() *client.Client
}

// Backends opens the backend of a storage pool.
type Backends interface {
	Backend(pool *api.StoragePool) (volume.Backend, error)
}

// Images writes the disk of an image into a local file for a volume made
// from it and returns the file's format (raw or qcow2).
type Images interface {
	FetchDisk(ctx context.Context, img *api.Image, dst string) (format string, err error)
}

// Config configures a Loop.
type Config struct {
	// Host is this host's name: the loop keeps the volumes Owner gives
	// it.
	Host     string
	API      API
	Backends Backends
	// Images fetches image disks; nil refuses volumes made from images.
	Images Images
	// TempDir holds fetched image disks while a volume is made.
	TempDir string
	// Resync is the period of the backstop pass; default 30s.
	Resync time.Duration
	Logger *slog.Logger
}

// Loop converges the host's volumes.
type Loop struct {
	cfg  Config
	poke chan struct{}
	mu   sync.Mutex // one pass at a time
}

// New returns a loop; it does nothing until Run.
func New(cfg Config) *Loop {
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Loop{cfg: cfg, poke: make(chan struct{}, 1)}
}

// Poke asks for a pass soon.
func (l *Loop) Poke() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// Run makes passes until ctx ends: on every watch event of volumes and
// snapshots, after a failed pass (with back-off) and every resync period.
func (l *Loop) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, k := range []*api.Kind{api.VolumeKind, api.VolumeSnapshotKind} {
		wg.Go(func() { l.watch(ctx, k) })
	}
	delay := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.poke:
		case <-timer.C:
		}
		if err := l.Pass(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.cfg.Logger.Warn("volumes pass", "err", err, "retry_in", delay)
			timer.Reset(delay)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = time.Second
		timer.Reset(l.cfg.Resync)
	}
}

// watch pokes the loop on every event of kind k.
func (l *Loop) watch(ctx context.Context, k *api.Kind) {
	delay := time.Second
	for ctx.Err() == nil {
		err := client.Watch(ctx, l.cfg.API.Client(), k, "", client.WatchOptions{},
			func(api.WatchEvent[struct{}]) error { l.Poke(); return nil })
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.cfg.Logger.Debug("volume watch broke", "kind", k.Name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = time.Second
		l.Poke()
	}
}

// Pass converges every volume and snapshot of the host once; the errors
// of single objects are reported in their status and joined.
func (l *Loop) Pass(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cfg.API.Client()
	pools, _, err := client.ListAll[api.StoragePool](ctx, c, api.StoragePoolKind, "", client.ListOptions{})
	if err != nil {
		return fmt.Errorf("list storage pools: %w", err)
	}
	byName := map[string]*api.StoragePool{}
	for i := range pools {
		byName[pools[i].Metadata.Name] = &pools[i]
	}
	vols, _, err := client.ListAll[api.Volume](ctx, c, api.VolumeKind, "", client.ListOptions{})
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	snaps, _, err := client.ListAll[api.VolumeSnapshot](ctx, c, api.VolumeSnapshotKind, "", client.ListOptions{})
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var hosts []api.Host
	if hostless(vols, snaps) {
		if hosts, _, err = client.ListAll[api.Host](ctx, c, api.HostKind, "", client.ListOptions{}); err != nil {
			return fmt.Errorf("list hosts: %w", err)
		}
	}
	var errs []error
	// Snapshots first: a deleted volume waits for its deleted snapshots,
	// and a new snapshot should be taken before its volume goes.
	for i := range snaps {
		s := &snaps[i]
		if Owner(s.Status.Host, s.Status.VolumeID, hosts) != l.cfg.Host {
			continue
		}
		if err := l.snapshot(ctx, byName[s.Status.Pool], s); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range vols {
		v := &vols[i]
		if Owner(v.Spec.Host, api.BackendID("vol", v.Metadata.UID), hosts) != l.cfg.Host {
			continue
		}
		if err := l.volume(ctx, byName[v.Spec.Pool], v, snaps); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostless reports whether a volume or snapshot has no host, so that the
// hosts are needed to find its owner.
func hostless(vols []api.Volume, snaps []api.VolumeSnapshot) bool {
	for i := range vols {
		if vols[i].Spec.Host == "" {
			return true
		}
	}
	for i := range snaps {
		if snaps[i].Status.Host == "" {
			return true
		}
	}
	return false
}

// volume converges one volume and reports its status.
func (l *Loop) volume(ctx context.Context, pool *api.StoragePool, v *api.Volume, snaps []api.VolumeSnapshot) error {
	if v.Status.State == admission.VolumeDeleted {
		return nil
	}
	next := v.Status
	next.ID = api.BackendID("vol", v.Metadata.UID)
	err := l.convergeVolume(ctx, pool, v, &next, snaps)
	if err != nil {
		next.State, next.Message = api.VolumeError, err.Error()
	}
	if next != v.Status {
		next.UpdatedAt = time.Now().UTC().Truncate(time.Second)
		v.Status = next
		if werr := l.cfg.API.Client().UpdateStatus(ctx, v); werr != nil {
			return errors.Join(err, fmt.Errorf("report volume %s/%s: %w", v.Metadata.Project, v.Metadata.Name, werr))
		}
	}
	if err != nil {
		return fmt.Errorf("volume %s/%s: %w", v.Metadata.Project, v.Metadata.Name, err)
	}
	return nil
}

func (l *Loop) convergeVolume(ctx context.Context, pool *api.StoragePool, v *api.Volume, st *api.VolumeStatus, snaps []api.VolumeSnapshot) error {
	if pool == nil {
		return fmt.Errorf("storage pool %q not found", v.Spec.Pool)
	}
	b, err := l.cfg.Backends.Backend(pool)
	if err != nil {
		return err
	}
	id := st.ID
	if v.Metadata.DeletionTimestamp != nil {
		for _, s := range snaps {
			if s.Status.VolumeID == id {
				return fmt.Errorf("snapshot %s still depends on it", s.Metadata.Name)
			}
		}
		if err := b.Delete(ctx, id); err != nil {
			return err
		}
		st.State, st.Message, st.SizeBytes = admission.VolumeDeleted, "", 0
		return nil
	}
	size, err := b.Size(ctx, id)
	if errors.Is(err, volume.ErrNotFound) {
		src, cleanup, err := l.source(ctx, v)
		if err != nil {
			return err
		}
		defer cleanup()
		if err := b.Create(ctx, id, v.Spec.SizeBytes, src); err != nil {
			return err
		}
		size = v.Spec.SizeBytes
	} else if err != nil {
		return err
	}
	if size < v.Spec.SizeBytes {
		if err := b.Resize(ctx, id, v.Spec.SizeBytes); err != nil {
			return err
		}
		size = v.Spec.SizeBytes
	}
	st.SizeBytes, st.Message = size, ""
	st.ObservedGeneration = v.Metadata.Generation
	switch {
	case st.AttachedTo != "":
		st.State = api.VolumeInUse
	default:
		st.State = api.VolumeAvailable
	}
	return nil
}

// source resolves what a new volume starts as.
func (l *Loop) source(ctx context.Context, v *api.Volume) (*volume.Source, func(), error) {
	nothing := func() {}
	c := l.cfg.API.Client()
	switch {
	case v.Spec.FromSnapshot != "":
		var s api.VolumeSnapshot
		if err := c.Get(ctx, api.VolumeSnapshotKind, v.Metadata.Project, v.Spec.FromSnapshot, &s); err != nil {
			return nil, nothing, fmt.Errorf("snapshot %s: %w", v.Spec.FromSnapshot, err)
		}
		return &volume.Source{VolumeID: s.Status.VolumeID, SnapshotID: s.Status.ID}, nothing, nil
	case v.Spec.FromImage != "":
		if l.cfg.Images == nil {
			return nil, nothing, errors.New("this host cannot make volumes from images")
		}
		project, name := splitRef(v.Spec.FromImage)
		var img api.Image
		if err := c.Get(ctx, api.ImageKind, project, name, &img); err != nil {
			return nil, nothing, fmt.Errorf("image %s: %w", v.Spec.FromImage, err)
		}
		dst := fmt.Sprintf("%s/%s.image", l.cfg.TempDir, api.BackendID("vol", v.Metadata.UID))
		format, err := l.cfg.Images.FetchDisk(ctx, &img, dst)
		cleanup := func() { removeFile(dst) }
		if err != nil {
			cleanup()
			return nil, nothing, fmt.Errorf("fetch image %s: %w", v.Spec.FromImage, err)
		}
		return &volume.Source{ImagePath: dst, ImageFormat: format}, cleanup, nil
	}
	return nil, nothing, nil
}

// snapshot converges one snapshot and reports its status.
func (l *Loop) snapshot(ctx context.Context, pool *api.StoragePool, s *api.VolumeSnapshot) error {
	if s.Status.State == admission.VolumeDeleted {
		return nil
	}
	next := s.Status
	next.ID = api.BackendID("snap", s.Metadata.UID)
	err := l.convergeSnapshot(ctx, pool, s, &next)
	if err != nil {
		next.State, next.Message = api.SnapshotError, err.Error()
	}
	if next != s.Status {
		s.Status = next
		if werr := l.cfg.API.Client().UpdateStatus(ctx, s); werr != nil {
			return errors.Join(err, fmt.Errorf("report snapshot %s/%s: %w", s.Metadata.Project, s.Metadata.Name, werr))
		}
	}
	if err != nil {
		return fmt.Errorf("snapshot %s/%s: %w", s.Metadata.Project, s.Metadata.Name, err)
	}
	return nil
}

func (l *Loop) convergeSnapshot(ctx context.Context, pool *api.StoragePool, s *api.VolumeSnapshot, st *api.VolumeSnapshotStatus) error {
	if pool == nil {
		return fmt.Errorf("storage pool %q not found", s.Status.Pool)
	}
	b, err := l.cfg.Backends.Backend(pool)
	if err != nil {
		return err
	}
	if s.Metadata.DeletionTimestamp != nil {
		if err := b.DeleteSnapshot(ctx, st.VolumeID, st.ID); err != nil {
			return err
		}
		st.State, st.Message = admission.VolumeDeleted, ""
		return nil
	}
	if st.State == api.SnapshotReady {
		return nil
	}
	if err := b.Snapshot(ctx, st.VolumeID, st.ID); err != nil {
		return err
	}
	st.State, st.Message = api.SnapshotReady, ""
	return nil
}

package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ouroboros-cloud/ouro/agent/volumes"
	"github.com/ouroboros-cloud/ouro/api"
)

// newVolumes returns the loop keeping the host's volumes, nil without
// Config.VolumeDir.
func (a *Agent) newVolumes() *volumes.Loop {
	if a.cfg.VolumeDir == "" {
		return nil
	}
	return volumes.New(volumes.Config{
		Host:     a.name(),
		API:      &a.sess,
		Backends: &volumes.Pools{Dir: a.cfg.VolumeDir, Ceph: a.cfg.CephVolumes},
		Images:   volumeImages{a},
		TempDir:  a.cfg.VolumeDir,
		Logger:   a.log,
	})
}

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

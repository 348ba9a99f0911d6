package daemon

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/volume"
	vol "github.com/ouroboros-cloud/ouro/volume"
	"github.com/ouroboros-cloud/ouro/volume/ceph"
)

// cephVolumes opens ceph storage pools with package volume/ceph, each in
// a private directory of its own under dir (its ceph.conf, keyring and
// block-device exports).
func cephVolumes(dir string) func(*api.StoragePool) (vol.Backend, error) {
	return func(p *api.StoragePool) (vol.Backend, error) { return openCeph(dir, p) }
}

func openCeph(dir string, p *api.StoragePool) (*ceph.Backend, error) {
	c := p.Spec.Ceph
	if c == nil {
		return nil, fmt.Errorf("storage pool %s: no ceph settings", p.Metadata.Name)
	}
	user := c.User
	if user == "" {
		user = "admin"
	}
	b, err := ceph.New(ceph.Config{Monitors: c.Monitors, Pool: c.Pool, User: user, Key: c.Key,
		Dir: filepath.Join(dir, p.Metadata.Name)})
	if err != nil {
		return nil, fmt.Errorf("storage pool %s: %w", p.Metadata.Name, err)
	}
	return b, nil
}

// cephFencer fences hosts off ceph pools with the blocklist, as the
// pool's user (whose caps must allow "osd blocklist"), from a private
// directory of the server's.
type cephFencer struct{ dir string }

var _ volume.Fencer = cephFencer{}

// Fence implements volume.Fencer.
func (f cephFencer) Fence(ctx context.Context, p *api.StoragePool, address string) error {
	b, err := openCeph(f.dir, p)
	if err != nil {
		return err
	}
	return b.Fence(ctx, address)
}

// Unfence implements volume.Fencer.
func (f cephFencer) Unfence(ctx context.Context, p *api.StoragePool, address string) error {
	b, err := openCeph(f.dir, p)
	if err != nil {
		return err
	}
	return b.Unfence(ctx, address)
}

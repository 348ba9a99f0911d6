package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"

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

// checkCephPool checks a ceph pool against its cluster (ceph.Validate)
// and names the field of the pool's spec that is wrong.
func checkCephPool(ctx context.Context, p *api.StoragePool) error {
	for _, tool := range []string{"ceph", "rbd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Field: "spec.type",
				Message: "this server cannot reach Ceph clusters: " + tool + " is not installed",
				Hint:    "install ceph-common on the servers (they check pools and fence lost hosts)"}
		}
	}
	c := p.Spec.Ceph
	user := c.User
	if user == "" {
		user = "admin"
	}
	err := ceph.Validate(ctx, ceph.Config{Monitors: c.Monitors, Pool: c.Pool, User: user, Key: c.Key}, poolCheckTimeout)
	var ae *api.Error
	if errors.As(err, &ae) {
		field := map[string]string{"monitors": "spec.ceph.monitors", "keyring": "spec.ceph.key", "pool": "spec.ceph.pool"}[ae.Field]
		if field != "" {
			cp := *ae
			cp.Field = field
			return &cp
		}
	}
	return err
}

// poolCheckTimeout bounds each call of a pool's check.
const poolCheckTimeout = 15 * time.Second

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

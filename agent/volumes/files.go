package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/volume"
	"github.com/ouroboros-cloud/ouro/volume/local"
)

func splitRef(ref string) (project, name string) {
	project, name, _ = strings.Cut(ref, "/")
	return project, name
}

func removeFile(path string) { _ = os.Remove(path) }

// Pools opens the backends of storage pools: local pools as directories
// under Dir (one per pool), ceph pools with Ceph when set.
type Pools struct {
	Dir  string
	Ceph func(pool *api.StoragePool) (volume.Backend, error)

	mu     sync.Mutex
	opened map[string]volume.Backend
}

// Backend implements Backends.
func (p *Pools) Backend(pool *api.StoragePool) (volume.Backend, error) {
	switch pool.Spec.Type {
	case api.PoolLocal:
		p.mu.Lock()
		defer p.mu.Unlock()
		if b, ok := p.opened[pool.Metadata.Name]; ok {
			return b, nil
		}
		b, err := local.New(filepath.Join(p.Dir, pool.Metadata.Name))
		if err != nil {
			return nil, err
		}
		if p.opened == nil {
			p.opened = map[string]volume.Backend{}
		}
		p.opened[pool.Metadata.Name] = b
		return b, nil
	case api.PoolCeph:
		if p.Ceph != nil {
			return p.Ceph(pool)
		}
	}
	return nil, fmt.Errorf("storage pool %s: type %q is not supported on this host", pool.Metadata.Name, pool.Spec.Type)
}

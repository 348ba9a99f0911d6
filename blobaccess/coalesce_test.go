package blobaccess

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// listStore is a store of images that can only list, counting lists; it
// has no snapshots, so the index lists everything on each refresh.
type listStore struct {
	store.Interface
	mu    sync.Mutex
	rev   int64
	imgs  []api.Object
	lists atomic.Int64
}

func (s *listStore) add(img *api.Image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	img.Metadata.ResourceVersion = strconv.FormatInt(s.rev, 10)
	s.imgs = append(s.imgs, img)
}

func (s *listStore) List(_ context.Context, k *api.Kind, _ string, _ store.ListOptions) ([]api.Object, api.ListMeta, error) {
	s.lists.Add(1)
	if k != api.ImageKind {
		return nil, api.ListMeta{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.Object(nil), s.imgs...), api.ListMeta{}, nil
}

// TestReadsSeeEarlierCreates creates images and reads their blobs at once
// from many goroutines: each read sees the image created before it, and
// concurrent reads share refreshes.
func TestReadsSeeEarlierCreates(t *testing.T) {
	st := &listStore{}
	x := New(Config{Store: st})
	id := &auth.Identity{User: "mia", Roles: map[string]api.Role{"a": api.RoleViewer}}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.add(image("a", fmt.Sprintf("img%d", i), false, hexOf(i)))
			if ok, err := x.CanRead(context.Background(), id, hexOf(i)); err != nil || !ok {
				t.Errorf("blob of image %d just created: CanRead = %v, %v", i, ok, err)
			}
		}()
	}
	wg.Wait()
	if lists := st.lists.Load(); lists > n {
		t.Errorf("%d reads made %d refreshes", n, lists)
	}
	t.Logf("%d reads made %d refreshes", n, st.lists.Load())
}

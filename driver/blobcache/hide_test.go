package blobcache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// errRefused is what the checks and builds below fail with.
var errRefused = errors.New("refused")

// A check or build that names the temporary file or directory it was
// given fails with the same message on every try, naming no temporary
// path, and errors.Is still finds the cause.
func TestErrorsHideTemporaryPaths(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the cache's directory and one try.
		setup func(t *testing.T, src *fakeSource) (dir string, try func(api.Blob) error)
		want  string
	}{
		{
			name: "fetch check",
			setup: func(t *testing.T, src *fakeSource) (string, func(api.Blob) error) {
				c := New(t.TempDir(), src, quiet)
				return c.Dir(), func(b api.Blob) error {
					_, err := c.Fetch(context.Background(), b, func(path string) error {
						return fmt.Errorf("qemu-img: Could not open '%s': %w", path, errRefused)
					})
					return err
				}
			},
			want: "qemu-img: Could not open '" + tmpBlobName + "': refused",
		},
		{
			name: "build",
			setup: func(t *testing.T, src *fakeSource) (string, func(api.Blob) error) {
				d, _, _ := newDerived(t)
				d.blobs.src = src
				d.build = func(_ context.Context, _ api.Blob, _, _, dir string) error {
					return &fs.PathError{Op: "lstat", Path: dir + "/etc", Err: errRefused}
				}
				return d.Dir(), func(b api.Blob) error {
					_, err := d.Ensure(context.Background(), b, "")
					return err
				}
			},
			want: "lstat " + tmpDirName + "/etc: refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			b := src.add([]byte("content of " + tt.name))
			dir, try := tt.setup(t, src)
			var msgs []string
			for range 2 {
				err := try(b)
				if !errors.Is(err, errRefused) {
					t.Fatalf("error %v does not wrap the cause", err)
				}
				if strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), ".tmp-") {
					t.Errorf("error %q names a temporary path", err)
				}
				msgs = append(msgs, err.Error())
			}
			if !strings.Contains(msgs[0], tt.want) || !strings.Contains(msgs[0], b.Digest) {
				t.Errorf("error %q does not name the blob and say %q", msgs[0], tt.want)
			}
			if msgs[1] != msgs[0] {
				t.Errorf("the second try failed with another message:\n%s\n%s", msgs[0], msgs[1])
			}
		})
	}
}

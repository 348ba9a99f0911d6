package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// fakeBlobs is a Blobs of blob sizes by hex digest; the blobs in hidden
// exist but may not be referred to.
type fakeBlobs struct {
	sizes   map[string]int64
	hidden  map[string]bool
	err     error // answered by CanRefer
	touched map[string]time.Time
}

func (f *fakeBlobs) CanRefer(_ context.Context, _ *auth.Identity, hx string) (bool, error) {
	return !f.hidden[hx], f.err
}

func (f *fakeBlobs) Stat(hx string) (fs.FileInfo, error) {
	size, ok := f.sizes[hx]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: hx, Err: fs.ErrNotExist}
	}
	return sizedInfo(size), nil
}

func (f *fakeBlobs) Touch(hx string, t time.Time) { f.touched[hx] = t }

// sizedInfo is the file information of a blob of its size.
type sizedInfo int64

func (s sizedInfo) Name() string       { return "blob" }
func (s sizedInfo) Size() int64        { return int64(s) }
func (s sizedInfo) Mode() fs.FileMode  { return 0o644 }
func (s sizedInfo) ModTime() time.Time { return time.Time{} }
func (s sizedInfo) IsDir() bool        { return false }
func (s sizedInfo) Sys() any           { return nil }

// add records data as a blob and returns it as one of mediaType.
func (f *fakeBlobs) add(data, mediaType string) *api.Blob {
	sum := sha256.Sum256([]byte(data))
	hx := hex.EncodeToString(sum[:])
	f.sizes[hx] = int64(len(data))
	return &api.Blob{Digest: "sha256:" + hx, Size: int64(len(data)), MediaType: mediaType}
}

func newFakeBlobs() *fakeBlobs {
	return &fakeBlobs{sizes: map[string]int64{}, hidden: map[string]bool{}, touched: map[string]time.Time{}}
}

func TestValidateImageCreate(t *testing.T) {
	blobs := newFakeBlobs()
	layer := blobs.add("layer", api.MediaTypeLayerTar)
	disk := blobs.add("disk", api.MediaTypeDiskQCOW2)
	kernel := blobs.add("kernel", api.MediaTypeKernel)
	hidden := blobs.add("another project's", api.MediaTypeKernel)
	blobs.hidden[strings.TrimPrefix(hidden.Digest, "sha256:")] = true
	missing := &api.Blob{Digest: "sha256:" + strings.Repeat("1", 64), Size: 5, MediaType: api.MediaTypeKernel}
	member := &auth.Identity{User: "alice", Roles: map[string]api.Role{"default": api.RoleMember}}
	with := func(b *api.Blob, f func(*api.Blob)) *api.Blob { c := *b; f(&c); return &c }
	tests := []struct {
		name       string
		id         *auth.Identity
		spec       api.ImageSpec
		wantStatus int
		wantField  string
		wantMsg    string
	}{
		{"oci", tester, api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}}, 0, "", ""},
		{"qcow2 with kernel", member, api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Kernel: kernel, Cmdline: "console=ttyS0"}, 0, "", ""},
		{"public by a member", member, api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}, Public: true}, http.StatusForbidden, "spec.public", "only cluster admins"},
		{"architecture", tester, api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}, Architecture: "vax"}, http.StatusBadRequest, "spec.architecture", "not known"},
		{"source", tester, api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}, Source: strings.Repeat("s", 2049)}, http.StatusBadRequest, "spec.source", "too long"},
		{"no layers", tester, api.ImageSpec{Format: api.FormatOCI}, http.StatusBadRequest, "spec.layers", "0 layers"},
		{"layer media type", tester, api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*with(layer, func(b *api.Blob) { b.MediaType = "x" })}}, http.StatusBadRequest, "spec.layers[0].mediaType", "not supported"},
		{"digest", tester, api.ImageSpec{Format: api.FormatKernel, Kernel: with(kernel, func(b *api.Blob) { b.Digest = "md5:1" })}, http.StatusBadRequest, "spec.kernel.digest", "not valid"},
		{"missing", tester, api.ImageSpec{Format: api.FormatKernel, Kernel: missing}, http.StatusBadRequest, "spec.kernel.digest", "not uploaded"},
		{"hidden as missing", member, api.ImageSpec{Format: api.FormatKernel, Kernel: hidden}, http.StatusBadRequest, "spec.kernel.digest", "not uploaded"},
		{"size", tester, api.ImageSpec{Format: api.FormatKernel, Kernel: with(kernel, func(b *api.Blob) { b.Size++ })}, http.StatusBadRequest, "spec.kernel.size", "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := &api.Image{Spec: tt.spec}
			err := ValidateImageCreate(context.Background(), blobs, tt.id, img)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("ValidateImageCreate: %v", err)
				}
				if img.Status.Phase != "Ready" || img.Status.Size == 0 {
					t.Errorf("status %+v, want Ready with a size", img.Status)
				}
				for _, b := range img.Spec.Blobs() {
					if _, ok := blobs.touched[strings.TrimPrefix(b.Digest, "sha256:")]; !ok {
						t.Errorf("blob %s was not touched", b.Digest)
					}
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != tt.wantStatus || ae.Field != tt.wantField || !strings.Contains(ae.Message, tt.wantMsg) || ae.Hint == "" {
				t.Errorf("error %v, want %d on %s saying %q with a hint", err, tt.wantStatus, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestValidateImageCreateBackendDown(t *testing.T) {
	blobs := newFakeBlobs()
	kernel := blobs.add("kernel", api.MediaTypeKernel)
	blobs.err = os.ErrDeadlineExceeded
	err := ValidateImageCreate(context.Background(), blobs, tester, &api.Image{Spec: api.ImageSpec{Format: api.FormatKernel, Kernel: kernel}})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("error %v, want 503 wrapping the cause", err)
	}
}

func TestValidateCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		ok      bool
	}{
		{"", true},
		{"root=/dev/vda rw console=ttyS0", true},
		{strings.Repeat("a", MaxCmdlineBytes), true},
		{strings.Repeat("a", MaxCmdlineBytes+1), false},
		{"quiet\ninit=/bin/sh", false},
		{"quiét", false},
		{"tab\there", false},
	} {
		if err := validateCmdline("spec.cmdline", tt.cmdline); (err == nil) != tt.ok {
			t.Errorf("validateCmdline(%.20q) = %v, want ok %v", tt.cmdline, err, tt.ok)
		}
	}
}

func TestValidateImageUpdate(t *testing.T) {
	old := &api.Image{Spec: api.ImageSpec{Format: api.FormatKernel, Kernel: &api.Blob{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1}}}
	member := &auth.Identity{User: "alice"}
	for _, tt := range []struct {
		name      string
		id        *auth.Identity
		change    func(*api.ImageSpec)
		wantField string
	}{
		{"description", member, func(s *api.ImageSpec) { s.Description = "a kernel" }, ""},
		{"publish by an admin", tester, func(s *api.ImageSpec) { s.Public = true }, ""},
		{"publish by a member", member, func(s *api.ImageSpec) { s.Public = true }, "spec.public"},
		{"format", tester, func(s *api.ImageSpec) { s.Format = api.FormatRaw }, "spec.format"},
		{"kernel", tester, func(s *api.ImageSpec) { s.Kernel = nil }, "spec.kernel"},
		{"cmdline", tester, func(s *api.ImageSpec) { s.Cmdline = "quiet" }, "spec.cmdline"},
		{"source", tester, func(s *api.ImageSpec) { s.Source = strings.Repeat("s", 2049) }, "spec.source"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := *old
			tt.change(&img.Spec)
			err := ValidateImageUpdate(tt.id, old, &img)
			var ae *api.Error
			switch {
			case tt.wantField == "" && err != nil:
				t.Errorf("ValidateImageUpdate: %v", err)
			case tt.wantField != "" && (!errors.As(err, &ae) || ae.Field != tt.wantField):
				t.Errorf("error %v, want one on %s", err, tt.wantField)
			}
		})
	}
}

func TestStoreImageClaimsPublicName(t *testing.T) {
	_, st := newCloud(t)
	ctx := context.Background()
	if _, err := st.Create(ctx, &api.Project{Metadata: api.ObjectMeta{Name: "other"}}, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	public := func(project string) *api.Image {
		return &api.Image{Metadata: api.ObjectMeta{Name: "debian", Project: project},
			Spec: api.ImageSpec{Format: api.FormatOCI, Public: true}}
	}
	if _, err := StoreImage(ctx, st, public("default"), store.CreateOptions{}); err != nil {
		t.Fatalf("StoreImage: %v", err)
	}
	_, err := StoreImage(ctx, st, public("other"), store.CreateOptions{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "default/debian") {
		t.Fatalf("second public image: %v, want 409 naming default/debian", err)
	}

	// Made private, the name is free for another project to publish.
	var old api.Image
	if err := st.Get(ctx, api.ImageKind, "default", "debian", &old); err != nil {
		t.Fatal(err)
	}
	private := old
	private.Spec.Public = false
	if err := UpdateImage(ctx, st, &old, &private); err != nil {
		t.Fatalf("UpdateImage: %v", err)
	}
	if _, err := StoreImage(ctx, st, public("other"), store.CreateOptions{}); err != nil {
		t.Errorf("publishing a freed name: %v", err)
	}
}

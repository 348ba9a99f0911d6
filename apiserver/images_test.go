package apiserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
)

// blob uploads data and returns it as a blob of mediaType.
func (e *env) blob(data, mediaType string) *api.Blob {
	e.t.Helper()
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf([]byte(data)), e.admin, []byte(data))
	return &api.Blob{Digest: digestOf([]byte(data)), Size: int64(len(data)), MediaType: mediaType}
}

// diskMediaType is the media type an image of each disk format gives
// spec.disk when it is left out.
var diskMediaType = map[string]string{api.FormatQCOW2: api.MediaTypeDiskQCOW2, api.FormatRaw: api.MediaTypeDiskRaw}

func TestVMImagesCreate(t *testing.T) {
	e := newEnv(t)
	disk := e.blob("QFI\xfb a qcow2 disk", api.MediaTypeDiskQCOW2)
	raw := e.blob("a raw disk", api.MediaTypeDiskRaw)
	kernel := e.blob("a kernel", api.MediaTypeKernel)
	initrd := e.blob("an initrd", api.MediaTypeInitrd)
	bare := func(b *api.Blob) *api.Blob { c := *b; c.MediaType = ""; return &c }
	tests := []struct {
		name     string
		spec     api.ImageSpec
		wantSize int64
	}{
		{"qcow2", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk}, disk.Size},
		{"raw", api.ImageSpec{Format: api.FormatRaw, Disk: raw, Architecture: "amd64"}, raw.Size},
		{"qcow2 with kernel", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Kernel: kernel, Initrd: initrd,
			Cmdline: "root=/dev/vda rw console=ttyS0"}, disk.Size + kernel.Size + initrd.Size},
		{"kernel", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 quiet"},
			kernel.Size + initrd.Size},
		{"kernel alone", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel}, kernel.Size},
		{"media types defaulted", api.ImageSpec{Format: api.FormatRaw, Disk: bare(raw), Kernel: bare(kernel), Initrd: bare(initrd)},
			raw.Size + kernel.Size + initrd.Size},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := api.Image{Metadata: api.ObjectMeta{Name: "vm" + string(rune('a'+i))}, Spec: tt.spec}
			var out api.Image
			e.must(http.StatusCreated, "POST", "/v1/projects/default/images", e.admin, in).decode(t, &out)
			if out.Status.Phase != "Ready" || out.Status.Driver != api.DriverVM || out.Status.Size != tt.wantSize {
				t.Errorf("status %+v, want Ready, vm, size %d", out.Status, tt.wantSize)
			}
			for _, b := range []struct {
				got  *api.Blob
				want string
			}{{out.Spec.Disk, diskMediaType[tt.spec.Format]}, {out.Spec.Kernel, api.MediaTypeKernel}, {out.Spec.Initrd, api.MediaTypeInitrd}} {
				if b.got != nil && b.got.MediaType != b.want {
					t.Errorf("media type %q, want %q", b.got.MediaType, b.want)
				}
			}
			if out.Spec.Cmdline != tt.spec.Cmdline {
				t.Errorf("cmdline %q, want %q", out.Spec.Cmdline, tt.spec.Cmdline)
			}
		})
	}
	// An instance of a VM image needs the vm driver.
	var inst api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, api.Instance{
		Metadata: api.ObjectMeta{Name: "v"}, Spec: api.InstanceSpec{Image: "vma", Flavor: "tiny"}}).decode(t, &inst)
	if inst.Status.Driver != api.DriverVM {
		t.Errorf("instance driver %q, want vm", inst.Status.Driver)
	}
}

func TestVMImagesRefused(t *testing.T) {
	e := newEnv(t)
	disk := e.blob("disk bytes", api.MediaTypeDiskQCOW2)
	kernel := e.blob("kernel bytes", api.MediaTypeKernel)
	initrd := e.blob("initrd bytes", api.MediaTypeInitrd)
	layer := e.blob("layer bytes", api.MediaTypeLayerTar)
	missing := &api.Blob{Digest: "sha256:" + strings.Repeat("1", 64), Size: 5}
	with := func(b *api.Blob, f func(*api.Blob)) *api.Blob { c := *b; f(&c); return &c }
	tests := []struct {
		name      string
		spec      api.ImageSpec
		wantField string
		wantMsg   string
	}{
		{"unknown format", api.ImageSpec{Format: "vmdk", Disk: disk}, "spec.format", "not supported"},
		{"qcow2 without disk", api.ImageSpec{Format: api.FormatQCOW2}, "spec.disk", "needs a disk"},
		{"raw without disk", api.ImageSpec{Format: api.FormatRaw, Kernel: kernel}, "spec.disk", "needs a disk"},
		{"kernel without kernel", api.ImageSpec{Format: api.FormatKernel, Initrd: initrd}, "spec.kernel", "needs a kernel"},
		{"kernel with disk", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Disk: disk}, "spec.disk", "no disk"},
		{"disk with layers", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Layers: []api.Blob{*layer}}, "spec.layers", "no layers"},
		{"disk with config", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Config: api.ImageConfig{Cmd: []string{"sh"}}}, "spec.config", "no config"},
		{"initrd without kernel", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Initrd: initrd}, "spec.initrd", "needs a kernel"},
		{"cmdline without kernel", api.ImageSpec{Format: api.FormatRaw, Disk: with(disk, func(b *api.Blob) { b.MediaType = "" }), Cmdline: "quiet"}, "spec.cmdline", "needs a kernel"},
		{"cmdline too long", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Cmdline: strings.Repeat("a", admission.MaxCmdlineBytes+1)}, "spec.cmdline", "bytes"},
		{"cmdline newline", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Cmdline: "quiet\ninit=/bin/sh"}, "spec.cmdline", "byte 5"},
		{"cmdline non-ASCII", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Cmdline: "quiét"}, "spec.cmdline", "byte 3"},
		{"disk media type", api.ImageSpec{Format: api.FormatRaw, Disk: disk}, "spec.disk.mediaType", "does not fit"},
		{"kernel media type", api.ImageSpec{Format: api.FormatKernel, Kernel: initrd}, "spec.kernel.mediaType", "does not fit"},
		{"disk digest", api.ImageSpec{Format: api.FormatQCOW2, Disk: with(disk, func(b *api.Blob) { b.Digest = "sha256:XYZ" })}, "spec.disk.digest", "not valid"},
		{"disk missing", api.ImageSpec{Format: api.FormatQCOW2, Disk: with(missing, func(b *api.Blob) { b.MediaType = api.MediaTypeDiskQCOW2 })}, "spec.disk.digest", "not uploaded"},
		{"disk size", api.ImageSpec{Format: api.FormatQCOW2, Disk: with(disk, func(b *api.Blob) { b.Size++ })}, "spec.disk.size", "does not match"},
		{"kernel missing", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Kernel: missing}, "spec.kernel.digest", "not uploaded"},
		{"initrd size", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Initrd: with(initrd, func(b *api.Blob) { b.Size = 1 })}, "spec.initrd.size", "does not match"},
		{"oci with disk", api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}, Disk: disk}, "spec.disk", "no disk"},
		{"oci with cmdline", api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{*layer}, Cmdline: "quiet"}, "spec.cmdline", "no cmdline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			r := e.do("POST", "/v1/projects/default/images", e.admin, api.Image{Metadata: api.ObjectMeta{Name: "x"}, Spec: tt.spec})
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			ae := r.apiError()
			if ae.Field != tt.wantField || !strings.Contains(ae.Message, tt.wantMsg) || ae.Hint == "" {
				t.Errorf("error %+v, want field %q and a message saying %q with a hint", ae, tt.wantField, tt.wantMsg)
			}
			if after := e.fake.revision(); after != before {
				t.Errorf("store changed: revision %d → %d", before, after)
			}
		})
	}
}

func TestVMImageUpdateKeepsContent(t *testing.T) {
	e := newEnv(t)
	disk := e.blob("disk", api.MediaTypeDiskQCOW2)
	kernel := e.blob("kernel", api.MediaTypeKernel)
	other := e.blob("other kernel", api.MediaTypeKernel)
	var img api.Image
	e.must(http.StatusCreated, "POST", "/v1/projects/default/images", e.admin, api.Image{Metadata: api.ObjectMeta{Name: "d"},
		Spec: api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Kernel: kernel, Cmdline: "console=ttyS0"}}).decode(t, &img)
	for _, tt := range []struct {
		field  string
		change func(s *api.ImageSpec)
	}{
		{"spec.disk", func(s *api.ImageSpec) { s.Disk = other }},
		{"spec.kernel", func(s *api.ImageSpec) { s.Kernel = other }},
		{"spec.initrd", func(s *api.ImageSpec) { s.Initrd = other }},
		{"spec.cmdline", func(s *api.ImageSpec) { s.Cmdline = "init=/bin/sh" }},
	} {
		changed := img
		tt.change(&changed.Spec)
		if ae := e.must(http.StatusBadRequest, "PUT", "/v1/projects/default/images/d", e.admin, changed).apiError(); ae.Field != tt.field {
			t.Errorf("changing %s: error %+v", tt.field, ae)
		}
	}
	img.Spec.Description = "boots with its own kernel"
	e.must(http.StatusOK, "PUT", "/v1/projects/default/images/d", e.admin, img)
}

func TestSweepKeepsVMImageBlobs(t *testing.T) {
	e := newEnv(t)
	disk := e.blob("a disk to keep", api.MediaTypeDiskRaw)
	kernel := e.blob("a kernel to keep", api.MediaTypeKernel)
	initrd := e.blob("an initrd to keep", api.MediaTypeInitrd)
	orphan := e.blob("nobody's", "")
	e.must(http.StatusCreated, "POST", "/v1/projects/default/images", e.admin, api.Image{Metadata: api.ObjectMeta{Name: "k"},
		Spec: api.ImageSpec{Format: api.FormatRaw, Disk: disk, Kernel: kernel, Initrd: initrd}})
	old := time.Now().Add(-2 * UnreferencedBlobAge)
	path := func(b *api.Blob) string { return e.srv.blobs.Path(strings.TrimPrefix(b.Digest, "sha256:")) }
	for _, b := range []*api.Blob{disk, kernel, initrd, orphan} {
		if err := os.Chtimes(path(b), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.SweepBlobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*api.Blob{disk, kernel, initrd} {
		if _, err := os.Stat(path(b)); err != nil {
			t.Errorf("blob %s of an image removed: %v", b.Digest, err)
		}
	}
	if _, err := os.Stat(path(orphan)); err == nil {
		t.Error("old unreferenced blob kept")
	}
}

func TestBlobSizeLimit(t *testing.T) {
	e := newEnvWith(t, newFakeStore(), Config{MaxBlobBytes: 1000})
	fits := bytes.Repeat([]byte("a"), 1000)
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(fits), e.admin, fits)
	big := bytes.Repeat([]byte("b"), 1001)
	if ae := e.must(http.StatusRequestEntityTooLarge, "PUT", "/v1/blobs/"+digestOf(big), e.admin, big).apiError(); !strings.Contains(ae.Message, "1000 bytes") {
		t.Errorf("too large: %+v", ae)
	}
	// A body of unknown length is cut off at the limit too.
	req, err := http.NewRequest("PUT", e.ts.URL+"/v1/blobs/"+digestOf(big), io.MultiReader(bytes.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+e.admin)
	res, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked upload over the limit: status %d", res.StatusCode)
	}
	entries, _ := os.ReadDir(e.srv.blobs.Dir())
	if len(entries) != 1 {
		t.Errorf("blob directory holds %d entries, want only the blob that fit", len(entries))
	}
}

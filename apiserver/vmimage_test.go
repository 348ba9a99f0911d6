package apiserver

import (
	"net/http"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestVMImagesAreReadyForTheVMDriver creates kernel and disk images from
// uploaded blobs and an instance of one: the image needs the vm driver,
// and so does the instance.
func TestVMImagesAreReadyForTheVMDriver(t *testing.T) {
	e := newEnv(t)
	blob := func(content, mediaType string) *api.Blob {
		b := []byte(content)
		e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(b), e.admin, b)
		return &api.Blob{Digest: digestOf(b), Size: int64(len(b)), MediaType: mediaType}
	}
	kernel, initrd := blob("kernel", api.MediaTypeKernel), blob("initrd", api.MediaTypeInitrd)
	disk := blob("disk", api.MediaTypeDiskQCOW2)
	for _, tc := range []struct {
		name string
		spec api.ImageSpec
		size int64
	}{
		{"tiny", api.ImageSpec{Format: api.FormatKernel, Kernel: kernel, Initrd: initrd, Cmdline: "quiet"}, 12},
		{"debian", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk}, 4},
		{"debian-direct", api.ImageSpec{Format: api.FormatQCOW2, Disk: disk, Kernel: kernel, Cmdline: "root=/dev/vda1"}, 10},
	} {
		var img api.Image
		e.must(http.StatusCreated, "POST", "/v1/projects/default/images", e.admin,
			api.Image{Metadata: api.ObjectMeta{Name: tc.name}, Spec: tc.spec}).decode(t, &img)
		if img.Status.Phase != "Ready" || img.Status.Driver != api.DriverVM || img.Status.Size != tc.size {
			t.Errorf("%s: status %+v, want Ready, driver vm, size %d", tc.name, img.Status, tc.size)
		}
	}
	if in := e.instance(e.admin, "default", "vm1", "tiny"); in.Status.Driver != api.DriverVM {
		t.Errorf("instance of a kernel image: driver %q, want vm", in.Status.Driver)
	}
	// The boot files of an image cannot change.
	var img api.Image
	e.must(http.StatusOK, "GET", "/v1/projects/default/images/tiny", e.admin, nil).decode(t, &img)
	img.Spec.Cmdline = "init=/bin/sh"
	if r := e.do("PUT", "/v1/projects/default/images/tiny", e.admin, img); r.status != http.StatusBadRequest || r.apiError().Field != "spec.cmdline" {
		t.Errorf("changing the kernel command line: %d %s", r.status, r.body)
	}
}

package imageimport

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// vmFixtures are real disk images made by qemu-img, and boot files.
type vmFixtures struct {
	qcow2, raw, kernel, initrd []byte
	dir                        string
}

func newVMFixtures(t *testing.T) *vmFixtures {
	t.Helper()
	dir := t.TempDir()
	raw := rawWithData(t, dir)
	q := filepath.Join(dir, "disk.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", raw, q)
	fx := &vmFixtures{dir: dir, kernel: fakeBzImage(true), initrd: gzipped(t, []byte("070701 an initramfs"))}
	var err error
	if fx.qcow2, err = os.ReadFile(q); err != nil {
		t.Fatal(err)
	}
	if fx.raw, err = os.ReadFile(raw); err != nil {
		t.Fatal(err)
	}
	return fx
}

// file writes data into the fixtures' directory and returns its path.
func (fx *vmFixtures) file(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(fx.dir, name)
	writeFile(t, p, data)
	return p
}

// serveFiles serves path → handler behaviours for download tests.
func serveFiles(t *testing.T, fx *vmFixtures) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /good/disk.qcow2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(fx.qcow2)))
		w.Write(fx.qcow2)
	})
	mux.HandleFunc("GET /good/disk.raw", func(w http.ResponseWriter, r *http.Request) { w.Write(fx.raw) })
	mux.HandleFunc("GET /good/rootfs.tar", func(w http.ResponseWriter, r *http.Request) {
		w.Write(tarOf(t, map[string]string{"etc/": "", "etc/hostname": "box\n"}))
	})
	// A truncated qcow2 file served whole: the download is fine, the image is not.
	mux.HandleFunc("GET /cut/disk.qcow2", func(w http.ResponseWriter, r *http.Request) {
		w.Write(fx.qcow2[:len(fx.qcow2)/2])
	})
	// The server announces more bytes than it sends and closes.
	mux.HandleFunc("GET /short/disk.qcow2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(fx.qcow2)))
		w.Write(fx.qcow2[:len(fx.qcow2)/3])
	})
	// The connection breaks in the middle of a chunked body.
	mux.HandleFunc("GET /broken/disk.qcow2", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", 65536)
		buf.Write(fx.qcow2[:65536])
		buf.WriteString("\r\n")
		buf.Flush()
	})
	// The server sends a little and then nothing.
	mux.HandleFunc("GET /stall/disk.qcow2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(fx.qcow2)))
		w.Write(fx.qcow2[:4096])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /missing/disk.qcow2", http.NotFound)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// workEmpty fails the test if the work directory holds anything.
func workEmpty(t *testing.T, work string) {
	t.Helper()
	left, err := os.ReadDir(work)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(left) != 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("files left in the work directory: %v", names)
	}
}

func TestLoadSourceDownloads(t *testing.T) {
	fx := newVMFixtures(t)
	srv := serveFiles(t, fx)
	defer func(d time.Duration) { fetchStallTimeout = d }(fetchStallTimeout)
	fetchStallTimeout = 300 * time.Millisecond
	qcowSum := strings.TrimPrefix(digestOf(fx.qcow2), "sha256:")

	t.Run("good", func(t *testing.T) {
		work := t.TempDir()
		var steps []string
		img, err := LoadSource(context.Background(), srv.URL+"/good/disk.qcow2", work, Options{
			SHA256: strings.ToUpper(qcowSum), Architecture: "amd64",
			Progress: func(step string, done, total int64) {
				if len(steps) == 0 || steps[len(steps)-1] != step {
					steps = append(steps, step)
				}
				if total != int64(len(fx.qcow2)) || done > total {
					t.Errorf("progress %d/%d, want total %d", done, total, len(fx.qcow2))
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if img.Format != api.FormatQCOW2 || img.Disk == nil || img.Disk.Digest != digestOf(fx.qcow2) ||
			img.Disk.Size != int64(len(fx.qcow2)) || img.Disk.MediaType != api.MediaTypeDiskQCOW2 || img.Architecture != "amd64" {
			t.Fatalf("image %+v disk %+v", img, img.Disk)
		}
		got, err := os.ReadFile(img.Disk.Path)
		if err != nil || digestOf(got) != img.Disk.Digest || filepath.Dir(img.Disk.Path) != work {
			t.Errorf("disk file %s: %v", img.Disk.Path, err)
		}
		if strings.Join(steps, ",") != "Downloading" {
			t.Errorf("progress steps %v, want only Downloading (the download is hashed as it streams)", steps)
		}
	})
	t.Run("raw by name", func(t *testing.T) {
		img, err := LoadSource(context.Background(), srv.URL+"/good/disk.raw", t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if img.Format != api.FormatRaw || img.Disk.MediaType != api.MediaTypeDiskRaw || img.Disk.Size != 16<<20 {
			t.Fatalf("image %+v disk %+v", img, img.Disk)
		}
	})
	t.Run("rootfs tarball", func(t *testing.T) {
		work := t.TempDir()
		img, err := LoadSource(context.Background(), srv.URL+"/good/rootfs.tar", work, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if img.format() != api.FormatOCI || len(img.Layers) != 1 || img.Source != srv.URL+"/good/rootfs.tar" {
			t.Fatalf("image %+v", img)
		}
		if left, _ := os.ReadDir(work); len(left) != 1 {
			t.Errorf("work directory holds %d files, want only the layer (the download is removed)", len(left))
		}
	})

	for _, tt := range []struct {
		name, path, sha string
		want            string
	}{
		{"wrong sha256", "/good/disk.qcow2", strings.Repeat("ab", 32), "sha256 mismatch"},
		{"not found", "/missing/disk.qcow2", "", "404"},
		{"shorter than Content-Length", "/short/disk.qcow2", "", "cut short"},
		{"connection broken", "/broken/disk.qcow2", "", "download failed"},
		{"stalled", "/stall/disk.qcow2", "", "no data for"},
		{"truncated qcow2", "/cut/disk.qcow2", "", "truncated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			img, err := LoadSource(context.Background(), srv.URL+tt.path, work, Options{SHA256: tt.sha})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadSource = %+v, %v; want an error saying %q", img, err, tt.want)
			}
			workEmpty(t, work)
		})
	}
}

func TestLoadSourceLocalFiles(t *testing.T) {
	fx := newVMFixtures(t)
	qcow := fx.file(t, "local.qcow2", fx.qcow2)
	kernel := fx.file(t, "vmlinuz", fx.kernel)
	initrd := fx.file(t, "initrd.img", fx.initrd)
	unknown := fx.file(t, "disk", fx.raw)

	t.Run("qcow2 uploaded from where it is", func(t *testing.T) {
		work := t.TempDir()
		img, err := LoadSource(context.Background(), qcow, work, Options{SHA256: digestOf(fx.qcow2)})
		if err != nil {
			t.Fatal(err)
		}
		if img.Disk.Path != qcow || img.Disk.Digest != digestOf(fx.qcow2) || img.Kernel != nil || img.Architecture != "" {
			t.Fatalf("image %+v disk %+v", img, img.Disk)
		}
		workEmpty(t, work)
	})
	t.Run("kernel image", func(t *testing.T) {
		img, err := LoadSource(context.Background(), "", t.TempDir(), Options{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 quiet"})
		if err != nil {
			t.Fatal(err)
		}
		if img.Format != api.FormatKernel || img.Disk != nil || img.Kernel.Digest != digestOf(fx.kernel) ||
			img.Kernel.MediaType != api.MediaTypeKernel || img.Initrd.Digest != digestOf(fx.initrd) ||
			img.Initrd.MediaType != api.MediaTypeInitrd || img.Cmdline != "console=ttyS0 quiet" || img.Architecture != "amd64" {
			t.Fatalf("image %+v", img)
		}
	})
	t.Run("raw disk with kernel", func(t *testing.T) {
		img, err := LoadSource(context.Background(), unknown, t.TempDir(), Options{Format: api.FormatRaw, Kernel: kernel, Cmdline: "root=/dev/vda"})
		if err != nil {
			t.Fatal(err)
		}
		if img.Format != api.FormatRaw || img.Disk.Digest != digestOf(fx.raw) || img.Kernel == nil || img.Initrd != nil || img.Architecture != "amd64" {
			t.Fatalf("image %+v", img)
		}
	})

	for _, tt := range []struct {
		name, source string
		opts         Options
		want         string
	}{
		{"wrong sha256", qcow, Options{SHA256: strings.Repeat("0", 64)}, "sha256 mismatch"},
		{"bad sha256", qcow, Options{SHA256: "abc"}, "64 hex digits"},
		{"raw without a hint", unknown, Options{}, "--format raw"},
		{"not a kernel", "", Options{Kernel: initrd}, "not a Linux kernel"},
		{"not an initrd", "", Options{Kernel: kernel, Initrd: kernel}, "not an initramfs"},
		{"arch contradicts the kernel", "", Options{Kernel: kernel, Architecture: "arm64"}, "does not match"},
		{"arch not Go's name", qcow, Options{Architecture: "x86_64"}, "amd64"},
		{"initrd without kernel", qcow, Options{Initrd: initrd}, "need --kernel"},
		{"nothing", "", Options{}, "give a SOURCE"},
		{"cmdline newline", "", Options{Kernel: kernel, Cmdline: "a\nb"}, "printable"},
		{"sha256 of a reference", "docker.io/library/alpine:3.20", Options{SHA256: strings.Repeat("0", 64)}, "--sha256"},
		{"disk that is a directory", t.TempDir(), Options{Format: api.FormatQCOW2}, "file or an http(s) URL"},
		{"missing kernel", qcow, Options{Kernel: filepath.Join(fx.dir, "nope")}, "no such file"},
		{"kernel for an oci image", qcow, Options{Format: api.FormatOCI, Kernel: kernel}, "oci"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			img, err := LoadSource(context.Background(), tt.source, work, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadSource = %+v, %v; want an error saying %q", img, err, tt.want)
			}
			workEmpty(t, work)
		})
	}
}

func TestUploadVMImage(t *testing.T) {
	fx := newVMFixtures(t)
	f, c := startFakeServer(t)
	img, err := LoadSource(context.Background(), fx.file(t, "d.qcow2", fx.qcow2), t.TempDir(), Options{
		Kernel: fx.file(t, "k", fx.kernel), Initrd: fx.file(t, "i", fx.initrd), Cmdline: "root=/dev/vda"})
	if err != nil {
		t.Fatal(err)
	}
	var last, total int64
	out, err := Upload(context.Background(), c, "demo", "deb", img, UploadOptions{Progress: func(done, tot int64) { last, total = done, tot }})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(fx.qcow2) + len(fx.kernel) + len(fx.initrd))
	if last != want || total != want {
		t.Errorf("progress ended at %d/%d, want %d", last, total, want)
	}
	_, keys, images, blobs := f.state()
	got := images["deb"]
	s := got.Spec
	if s.Format != api.FormatQCOW2 || s.Disk == nil || s.Kernel == nil || s.Initrd == nil || s.Cmdline != "root=/dev/vda" ||
		len(s.Layers) != 0 || s.Architecture != "amd64" || s.Config.Cmd != nil {
		t.Fatalf("created %+v", s)
	}
	for _, b := range []*api.Blob{s.Disk, s.Kernel, s.Initrd} {
		if blobs[b.Digest] == nil {
			t.Errorf("blob %s (%s) not uploaded", b.Digest, b.MediaType)
		}
	}
	if out.Spec.Disk.Digest != digestOf(fx.qcow2) || len(keys) != 1 || keys[0] != IdempotencyKey("demo", "deb", img) {
		t.Errorf("out %+v keys %v", out.Spec, keys)
	}
	// The command line is part of what makes the image.
	other := *img
	other.Cmdline = "root=/dev/vdb"
	if IdempotencyKey("demo", "deb", img) == IdempotencyKey("demo", "deb", &other) {
		t.Error("idempotency key ignores the command line")
	}
}

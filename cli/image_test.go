package cli

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/store"
)

// writeRootfs writes a small gzip'd root filesystem tarball.
func writeRootfs(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	files := map[string]string{"etc/hostname": "box\n", "etc/motd": strings.Repeat("welcome ", 4096)}
	for _, name := range []string{"etc/hostname", "etc/motd"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, files[name])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestImageImportUploadsAndCleansUp(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	src := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	writeRootfs(t, src)

	r := runCLI(t, nil, "", "image", "import", "box", src, "--description", "a test box")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "image/box imported") {
		t.Errorf("stdout %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "Uploading box: 100%") || strings.Contains(r.stderr, "\r") {
		t.Errorf("want plain progress lines on a non-terminal stderr, got %q", r.stderr)
	}
	created, _ := c.object(t, api.ImageKind, "demo", "box").(*api.Image)
	if created == nil || created.Spec.Description != "a test box" {
		t.Fatalf("created %+v", created)
	}
	if len(created.Spec.Layers) != 1 || !slices.ContainsFunc(c.requestsSeen(), func(r request) bool {
		return r.Method == "PUT" && r.Path == "/v1/blobs/"+created.Spec.Layers[0].Digest
	}) {
		t.Fatalf("layer not uploaded: %+v", created.Spec.Layers)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestContextCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	t.Setenv(clientconfig.EnvConfig, path)
	t.Setenv(command.EnvToken, "")
	t.Setenv(command.EnvServer, "")
	a, b := newCloud(t), newCloud(t)
	b.Project(t, "pb")
	b.rec.Reset()
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "a", Server: a.URL, Token: a.Admin}, true)
	cfg.Upsert(clientconfig.Context{Name: "b", Server: b.URL, Token: b.Admin, Project: "pb"}, false)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "", "context", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "*         a") || strings.Contains(r.stdout, a.Admin) {
		t.Fatalf("context list: exit %d stdout %q", r.code, r.stdout)
	}
	// --context picks another cloud for one command.
	if r := runCLI(t, nil, "", "--context", "b", "instance", "list"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := b.requestsSeen(); len(got) != 1 || got[0].Path != "/v1/projects/pb/instances" || got[0].Auth != "Bearer "+b.Admin {
		t.Fatalf("requests to b: %+v", got)
	}
	if r := runCLI(t, nil, "", "--context", "c", "instance", "list"); r.code != 1 || !strings.Contains(r.stderr, "known: a, b") {
		t.Fatalf("unknown context: exit %d stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "", "context", "use", "b"); r.code != 0 {
		t.Fatalf("use: exit %d %s", r.code, r.stderr)
	}
	got, err := clientconfig.Load(path)
	if err != nil || got.CurrentContext != "b" {
		t.Fatalf("after use: %+v %v", got, err)
	}
	if r := runCLI(t, nil, "", "instance", "list"); r.code != 0 || len(b.requestsSeen()) != 2 || len(a.requestsSeen()) != 0 {
		t.Fatalf("current context not used: exit %d", r.code)
	}
}

func TestImageImportVMImage(t *testing.T) {
	qemuImg := testenv.NeedBinary(t, "qemu-img")
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	qcow, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(qcow)
	// A bzImage header is all the importer reads of a kernel.
	kernel := make([]byte, 4096)
	kernel[0x1fe], kernel[0x1ff] = 0x55, 0xaa
	copy(kernel[0x202:], "HdrS")
	kernel[0x206], kernel[0x207], kernel[0x236] = 0x0f, 0x02, 1
	kpath, ipath := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	os.WriteFile(kpath, kernel, 0o644)
	os.WriteFile(ipath, []byte("070701 initramfs"), 0o644)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/disk.qcow2":
			w.Write(qcow)
		case "/short.qcow2":
			w.Header().Set("Content-Length", fmt.Sprint(len(qcow)))
			w.Write(qcow[:len(qcow)/2])
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(files.Close)

	c := newCloud(t)
	c.useConfig(t)
	imported := func() []*api.Image {
		objs, _, err := c.Store.List(context.Background(), api.ImageKind, "demo", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []*api.Image
		for _, o := range objs {
			if n := o.Meta().Name; n != "alpine" && n != "busybox" {
				out = append(out, o.(*api.Image))
			}
		}
		return out
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	noTemp := func(t *testing.T) {
		t.Helper()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("temporary files left behind: %v", left)
		}
	}

	r := runCLI(t, nil, "", "image", "import", "deb", files.URL+"/disk.qcow2", "--sha256", hex.EncodeToString(sum[:]),
		"--kernel", kpath, "--initrd", ipath, "--cmdline", "root=/dev/vda rw console=ttyS0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "image/deb imported (qcow2,") {
		t.Errorf("stdout %q", r.stdout)
	}
	for _, want := range []string{"Downloading: 100%", "Uploading deb: 100%"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.stderr)
		}
	}
	created := imported()
	if len(created) != 1 {
		t.Fatalf("%d images created", len(created))
	}
	s := created[0].Spec
	if s.Format != api.FormatQCOW2 || s.Disk.Digest != "sha256:"+hex.EncodeToString(sum[:]) || s.Kernel == nil || s.Initrd == nil ||
		s.Cmdline != "root=/dev/vda rw console=ttyS0" || s.Architecture != "amd64" || s.Source != files.URL+"/disk.qcow2" {
		t.Errorf("created %+v", s)
	}
	noTemp(t)

	// A kernel image needs no SOURCE.
	if r := runCLI(t, nil, "", "image", "import", "k", "--kernel", kpath, "--cmdline", "console=ttyS0"); r.code != 0 ||
		!strings.Contains(r.stdout, "image/k imported (kernel,") {
		t.Fatalf("kernel image: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}

	// Failed downloads make no image and leave nothing behind.
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong sha256", []string{files.URL + "/disk.qcow2", "--sha256", strings.Repeat("0", 64)}, "sha256 mismatch"},
		{"short download", []string{files.URL + "/short.qcow2"}, "cut short"},
		{"not found", []string{files.URL + "/nothing.qcow2"}, "404"},
		{"no source", nil, "wants a SOURCE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, "", append([]string{"image", "import", "bad"}, tt.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, tt.want)
			}
			if n := len(imported()); n != 2 {
				t.Errorf("%d images created, want still 2", n)
			}
			noTemp(t)
		})
	}
}

package container

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// shimEnv makes the test binary act as the shim (see TestMain).
const shimEnv = "OURO_TEST_SHIM"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" {
		os.Exit(ShimMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// blobMap is a BlobSource backed by a map; it counts opens.
type blobMap struct {
	mu    sync.Mutex
	blobs map[string][]byte
	opens atomic.Int64
}

func (b *blobMap) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	b.opens.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.blobs[digest]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", digest)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// add stores data under its own digest and returns the blob.
func (b *blobMap) add(data []byte, mediaType string) api.Blob {
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.blobs == nil {
		b.blobs = map[string][]byte{}
	}
	b.blobs[digest] = data
	return api.Blob{Digest: digest, Size: int64(len(data)), MediaType: mediaType}
}

// tarEntry describes one entry of a test layer.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	linkname string
	mode     int64
	uid, gid int
	mtime    time.Time
	xattrs   map[string]string
}

// makeTar builds a tar archive of entries.
func makeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.linkname,
			Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: e.mtime,
			Format: tar.FormatPAX,
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = time.Unix(1700000000, 0)
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatalf("tar body %s: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// busyboxApplets are linked to busybox in the test image.
var busyboxApplets = []string{"sh", "sleep", "echo", "cat", "ls", "test", "id", "hostname", "true", "tty", "stty"}

// busyboxImage builds a two-layer image: busybox with its applets, an
// /etc/removed file and a /data dir with one file; then a gzip layer that
// whites out /etc/removed and makes /data opaque with a new file.
func busyboxImage(t testing.TB, blobs *blobMap) api.ImageSpec {
	t.Helper()
	bb, err := os.ReadFile(testenv.NeedFile(t, "/bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	base := []tarEntry{
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", body: string(bb), mode: 0o755},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\nworker:x:1000:1001::/home/worker:/bin/sh\n"},
		{name: "etc/group", body: "root:x:0:\nworkers:x:1001:\n"},
		{name: "etc/removed", body: "should be whited out\n"},
		{name: "data/", typ: tar.TypeDir},
		{name: "data/a", body: "a\n"},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	}
	for _, applet := range busyboxApplets {
		base = append(base, tarEntry{name: "bin/" + applet, typ: tar.TypeSymlink, linkname: "busybox"})
	}
	top := []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.removed"},
		{name: "data/", typ: tar.TypeDir},
		{name: "data/.wh..wh..opq"},
		{name: "data/b", body: "b\n"},
	}
	return api.ImageSpec{
		Format: api.FormatOCI,
		Layers: []api.Blob{
			blobs.add(makeTar(t, base), api.MediaTypeLayerTar),
			blobs.add(gzipBytes(t, makeTar(t, top)), api.MediaTypeLayerGzip),
		},
		Config: api.ImageConfig{Cmd: []string{"sh"}, Env: []string{"IMAGE_VAR=1"}},
	}
}

// newTestDriver returns a driver on a fresh directory that runs the test
// binary as its shim. The directory above dir (the test's temporary
// directory, 0700) is made searchable, as containers' unprivileged root
// must reach its root file system.
func newTestDriver(t testing.TB, dir string, blobs driver.BlobSource) *Driver {
	t.Helper()
	return newRuntimeTestDriver(t, dir, blobs, testRuntime())
}

// testRuntimeEnv names the OCI runtime the tests use (default runc):
//
//	OURO_TEST_RUNTIME=crun go test ./driver/container/
const testRuntimeEnv = "OURO_TEST_RUNTIME"

// testRuntime is the OCI runtime of the tests.
func testRuntime() string {
	if rt := os.Getenv(testRuntimeEnv); rt != "" {
		return rt
	}
	return "runc"
}

// newRuntimeTestDriver is newTestDriver with the OCI runtime runtime.
func newRuntimeTestDriver(t testing.TB, dir string, blobs driver.BlobSource, runtime string) *Driver {
	t.Helper()
	for p := filepath.Dir(dir); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{
		Dir:         dir,
		Blobs:       blobs,
		Runtime:     runtime,
		ShimCommand: []string{exe},
		ShimEnv:     []string{shimEnv + "=1"},
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// uniqueID returns an instance id no other test run uses, since runc's
// state directory is shared by the host.
func uniqueID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "ouro-test-" + hex.EncodeToString(b)
}

// createContainer creates spec and deletes it when the test ends, even
// if it fails.
func createContainer(t *testing.T, d *Driver, spec driver.Spec) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Errorf("cleanup: delete %s: %v", spec.ID, err)
		}
	})
	if err := d.Create(context.Background(), spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// needRunc skips (or fails in CI) tests that need root and the OCI
// runtime of the tests.
func needRunc(t testing.TB) {
	t.Helper()
	needRuntime(t, testRuntime())
}

// needRuntime skips (or fails in CI) tests that need root and the OCI
// runtime rt, and skips crun where it cannot run (a hybrid cgroup layout
// with controllers on cgroup v2).
func needRuntime(t testing.TB, rt string) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, rt)
	if filepath.Base(rt) == "crun" && !crunSupportsCgroups("/sys/fs/cgroup") {
		t.Skip("crun refuses this host's cgroups: hybrid, with controllers on cgroup v2")
	}
}

// execOut runs argv in the container and returns its exit code and
// trimmed stdout.
func execOut(t *testing.T, d *Driver, id string, argv ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, err := d.Exec(context.Background(), id, argv, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Exec %q: %v", argv, err)
	}
	if stderr.Len() > 0 {
		t.Logf("exec %q stderr: %s", argv, stderr.String())
	}
	return code, strings.TrimSpace(stdout.String())
}

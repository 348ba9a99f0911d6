package container

import (
	"archive/tar"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/blobcache"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestExtractRefusesEscapes(t *testing.T) {
	testenv.NeedRoot(t)
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot", []tarEntry{{name: "../evil", body: "x"}}},
		{"dot-dot inside", []tarEntry{{name: "a/../../evil", body: "x"}}},
		{"absolute", []tarEntry{{name: "/evil", body: "x"}}},
		{"symlink parent escaping", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, linkname: "../.."},
			{name: "link/evil", body: "x"},
		}},
		{"symlink chain escaping", []tarEntry{
			{name: "a", typ: tar.TypeSymlink, linkname: "b/../.."},
			{name: "b/", typ: tar.TypeDir},
			{name: "a/evil", body: "x"},
		}},
		{"hard link outside", []tarEntry{{name: "h", typ: tar.TypeLink, linkname: "../evil-target"}}},
		{"symlink loop", []tarEntry{
			{name: "l1", typ: tar.TypeSymlink, linkname: "l2"},
			{name: "l2", typ: tar.TypeSymlink, linkname: "l1"},
			{name: "l1/evil", body: "x"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outer := t.TempDir()
			root := filepath.Join(outer, "a", "b", "root")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outer, "a", "evil-target"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := extractTar(context.Background(), strings.NewReader(string(makeTar(t, tc.entries))), root, idMap{}, slog.Default())
			if err == nil {
				t.Fatal("extraction succeeded, want a refusal")
			}
			t.Logf("refused: %v", err)
			found := false
			filepath.Walk(outer, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Name() == "evil" {
					found = true
				}
				return nil
			})
			if found {
				t.Error("a file named evil was written")
			}
		})
	}
}

func TestExtractContent(t *testing.T) {
	testenv.NeedRoot(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	root := t.TempDir()
	entries := []tarEntry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/", typ: tar.TypeDir, mode: 0o750, uid: 7, gid: 8, mtime: mtime},
		{name: "./bin/tool", body: "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1001, mtime: mtime},
		{name: "./bin/alias", typ: tar.TypeLink, linkname: "bin/tool"},
		{name: "./bin/sym", typ: tar.TypeSymlink, linkname: "tool", uid: 5, gid: 6},
		{name: "./etc", typ: tar.TypeSymlink, linkname: "/real-etc"},
		{name: "./real-etc/", typ: tar.TypeDir},
		{name: "./etc/conf", body: "through an absolute link, inside the root"},
		{name: "./dup", body: "first"},
		{name: "./dup", body: "second"},
		{name: "./gone/.wh.file"},
		{name: "./opaque/.wh..wh..opq"},
		{name: "./fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "implicit/parent/file", body: "x"},
	}
	if err := extractTar(context.Background(), strings.NewReader(string(makeTar(t, entries))), root, idMap{}, slog.Default()); err != nil {
		t.Fatalf("extract: %v", err)
	}

	fi := lstat(t, root, "bin/tool")
	if fi.Mode()&os.ModePerm != 0o755 || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("bin/tool mode = %v, want setuid 0755", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("bin/tool owner = %d:%d, want 1000:1001", st.Uid, st.Gid)
	}
	if !fi.ModTime().Equal(mtime) {
		t.Errorf("bin/tool mtime = %v, want %v", fi.ModTime(), mtime)
	}
	dir := lstat(t, root, "bin")
	if dir.Mode()&os.ModePerm != 0o750 || !dir.ModTime().Equal(mtime) {
		t.Errorf("bin: mode %v mtime %v, want 0750 and %v (set after its children)", dir.Mode(), dir.ModTime(), mtime)
	}
	if !os.SameFile(fi, lstat(t, root, "bin/alias")) {
		t.Error("bin/alias is not a hard link of bin/tool")
	}
	if target, err := os.Readlink(filepath.Join(root, "bin/sym")); err != nil || target != "tool" {
		t.Errorf("bin/sym -> %q (%v), want tool", target, err)
	}
	if st := lstat(t, root, "bin/sym").Sys().(*syscall.Stat_t); st.Uid != 5 || st.Gid != 6 {
		t.Errorf("bin/sym owner = %d:%d, want 5:6 (lchown)", st.Uid, st.Gid)
	}
	if data, err := os.ReadFile(filepath.Join(root, "real-etc/conf")); err != nil || !strings.Contains(string(data), "inside the root") {
		t.Errorf("real-etc/conf = %q, %v: an absolute symlink must resolve inside the layer", data, err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "dup")); string(data) != "second" {
		t.Errorf("dup = %q, want the later entry", data)
	}
	wh := lstat(t, root, "gone/file")
	if st := wh.Sys().(*syscall.Stat_t); wh.Mode()&os.ModeCharDevice == 0 || st.Rdev != 0 {
		t.Errorf("whiteout gone/file: mode %v rdev %d, want char device 0/0", wh.Mode(), st.Rdev)
	}
	if fileExists(filepath.Join(root, "gone/.wh.file")) {
		t.Error("the whiteout marker itself was extracted")
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(root, "opaque"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr = %q, %v; want y", buf[:n], err)
	}
	if lstat(t, root, "fifo").Mode()&os.ModeNamedPipe == 0 {
		t.Error("fifo is not a named pipe")
	}
	if !lstat(t, root, "implicit/parent").IsDir() {
		t.Error("implicit parent directories were not made")
	}
}

func lstat(t *testing.T, root, rel string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("lstat %s: %v", rel, err)
	}
	return fi
}

func TestLayerDigestMismatch(t *testing.T) {
	testenv.NeedRoot(t)
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, dir, blobs)
	good := blobs.add(makeTar(t, []tarEntry{{name: "f", body: "good"}}), api.MediaTypeLayerTar)
	// Serve other bytes under the good digest.
	blobs.blobs[good.Digest] = makeTar(t, []tarEntry{{name: "f", body: "evil"}})
	spec := driver.Spec{ID: uniqueID(t), Image: api.ImageSpec{Layers: []api.Blob{good}}, Command: []string{"true"}}
	err := d.Create(context.Background(), spec)
	if err == nil {
		t.Fatal("Create with a corrupted blob succeeded")
	}
	if !strings.Contains(err.Error(), "digest mismatch") || !strings.Contains(err.Error(), good.Digest) {
		t.Errorf("error %q does not say digest mismatch and name the digest", err)
	}
	assertNoLayers(t, dir)
	if fileExists(d.paths(spec.ID).spec) {
		t.Error("a failed Create left spec.json")
	}
}

func TestLayerTraversalRefused(t *testing.T) {
	testenv.NeedRoot(t)
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, filepath.Join(dir, "containers"), blobs)
	evil := blobs.add(gzipBytes(t, makeTar(t, []tarEntry{{name: "../evil", body: "x"}})), api.MediaTypeLayerGzip)
	err := d.Create(context.Background(), driver.Spec{ID: uniqueID(t), Image: api.ImageSpec{Layers: []api.Blob{evil}}, Command: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Create = %v, want a refusal", err)
	}
	assertNoLayers(t, filepath.Join(dir, "containers"))
	for _, p := range []string{filepath.Join(dir, "evil"), filepath.Join(dir, "containers", "evil"), filepath.Join(dir, "containers", "layers", "evil")} {
		if fileExists(p) {
			t.Errorf("%s was written", p)
		}
	}
}

// assertNoLayers checks that no layer, final or temporary, is cached.
func assertNoLayers(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "layers"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("layer dir left: %s", e.Name())
	}
}

func TestLayerExtractedOnce(t *testing.T) {
	testenv.NeedRoot(t)
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, dir, blobs)
	layer := blobs.add(gzipBytes(t, makeTar(t, []tarEntry{{name: "shared", body: "x"}})), "")
	// A crashed earlier extraction left a temporary directory.
	stale := filepath.Join(dir, "layers", ".tmp-"+strings.TrimPrefix(layer.Digest, "sha256:")+"-123")
	if err := os.MkdirAll(filepath.Join(stale, "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = d.ensureLayers(context.Background(), []api.Blob{layer}, idMap{})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("ensureLayers: %v", err)
		}
	}
	if n := blobs.opens.Load(); n != 1 {
		t.Errorf("blob opened %d times, want 1", n)
	}
	if fileExists(stale) {
		t.Error("stale temporary extraction was not removed")
	}
	if data, err := os.ReadFile(filepath.Join(dir, "layers", strings.TrimPrefix(layer.Digest, "sha256:"), "shared")); err != nil || string(data) != "x" {
		t.Errorf("layer content = %q, %v (gzip sniffed without a media type)", data, err)
	}
}

func TestPruneLayers(t *testing.T) {
	testenv.NeedRoot(t)
	ctx := context.Background()
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, dir, blobs)
	used := blobs.add(makeTar(t, []tarEntry{{name: "used", body: "1"}}), api.MediaTypeLayerTar)
	kept := blobs.add(makeTar(t, []tarEntry{{name: "kept", body: "2"}}), api.MediaTypeLayerTar)
	unused := blobs.add(makeTar(t, []tarEntry{{name: "unused", body: "3"}}), api.MediaTypeLayerTar)
	// Both variants: the shifted one of new containers and the unshifted
	// one of containers from before user namespaces.
	for _, m := range []idMap{d.idMap, {}} {
		if _, err := d.ensureLayers(ctx, []api.Blob{kept, unused}, m); err != nil {
			t.Fatal(err)
		}
	}
	createContainer(t, d, driver.Spec{ID: uniqueID(t), Image: api.ImageSpec{Layers: []api.Blob{used}}, Command: []string{"true"}})
	if err := d.PruneLayers(ctx, map[string]bool{kept.Digest: true}); err != nil {
		t.Fatalf("PruneLayers: %v", err)
	}
	for b, want := range map[api.Blob]bool{used: true, kept: true, unused: false} {
		hexDigest, _ := blobcache.Hex(b.Digest)
		shifted := hexDigest + "-" + d.idMap.variant()
		if got := fileExists(filepath.Join(dir, "layers", shifted)); got != want {
			t.Errorf("layer %s present = %v, want %v", shifted, got, want)
		}
		if got := fileExists(filepath.Join(dir, "layers", hexDigest)); b != used && got != want {
			t.Errorf("unshifted layer %s present = %v, want %v", b.Digest, got, want)
		}
		if got := fileExists(filepath.Join(dir, "blobs", hexDigest)); got != want {
			t.Errorf("blob %s present = %v, want %v", b.Digest, got, want)
		}
	}
}

// A layer that fails to extract fails the same way on every try, with a
// message that names the blob and the tar entry and no host path: not the
// temporary directory it was extracted into (new on every try), nor the
// driver's directory.
func TestLayerErrorNamesEntryNotTempDir(t *testing.T) {
	testenv.NeedRoot(t)
	tests := []struct {
		name    string
		entries []tarEntry
		want    []string // in the message
	}{
		{"hard link through an absolute symlink", []tarEntry{
			{name: "lnk", typ: tar.TypeSymlink, linkname: "/etc"},
			{name: "hl", typ: tar.TypeLink, linkname: "lnk/passwd"},
		}, []string{`tar entry "hl"`, `"lnk/passwd"`, "lstat /etc:"}},
		{"hard link through an absolute symlink to a missing file", []tarEntry{
			{name: "etc/", typ: tar.TypeDir},
			{name: "lnk", typ: tar.TypeSymlink, linkname: "/etc"},
			{name: "hl", typ: tar.TypeLink, linkname: "lnk/passwd"},
		}, []string{`tar entry "hl"`, "lstat /etc/passwd:"}},
		{"file below a file", []tarEntry{
			{name: "f", body: "x"},
			{name: "f/g", body: "y"},
		}, []string{`tar entry "f/g"`, "f is not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blobs := &blobMap{}
			dir := t.TempDir()
			d := newTestDriver(t, dir, blobs)
			layer := blobs.add(makeTar(t, tt.entries), api.MediaTypeLayerTar)
			spec := driver.Spec{ID: uniqueID(t), Image: api.ImageSpec{Layers: []api.Blob{layer}}, Command: []string{"true"}}
			var msgs []string
			for range 2 { // as the agent retries
				err := d.Create(context.Background(), spec)
				if err == nil {
					t.Fatal("Create succeeded, want an extraction error")
				}
				msgs = append(msgs, err.Error())
			}
			msg := msgs[0]
			for _, w := range append(tt.want, layer.Digest) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, bad := range []string{dir, ".tmp-", os.TempDir() + "/"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error %q names the host path %q", msg, bad)
				}
			}
			if msgs[1] != msg {
				t.Errorf("the second try failed with another message:\n%s\n%s", msg, msgs[1])
			}
			assertNoLayers(t, dir)
		})
	}
}

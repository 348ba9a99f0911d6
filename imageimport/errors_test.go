package imageimport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// loadFails runs Load on source, checks that it fails with an error
// holding every one of wants and that the work directory is left empty.
func loadFails(t *testing.T, source string, wants ...string) {
	t.Helper()
	work := t.TempDir()
	img, err := Load(context.Background(), source, work)
	if err == nil {
		t.Fatalf("Load succeeded with %d layers, want an error", len(img.Layers))
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	assertEmpty(t, work)
}

func TestLoadCorruptLayer(t *testing.T) {
	good := gzipOf(t, tarOf(t, map[string]string{"a": "first layer"}))
	bad := gzipOf(t, tarOf(t, map[string]string{"b": strings.Repeat("second layer ", 100)}))
	cases := []struct {
		name string
		// flip is the offset of the byte to flip in the second layer.
		flip int
	}{
		{"compressed data", len(bad) / 2},
		{"gzip trailer", len(bad) - 2},
		{"gzip header", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			descs := writeLayout(t, dir, layoutSpec{layers: [][]byte{good, bad}, config: testConfig(hostArch, good, bad)})
			p := filepath.Join(dir, blobPath(descs[1].Digest))
			corrupt := append([]byte(nil), bad...)
			corrupt[tc.flip] ^= 0xff
			writeFile(t, p, corrupt)
			loadFails(t, dir, "layer "+descs[1].Digest+" is corrupt", digestOf(corrupt))
		})
	}
}

func TestLoadTruncatedLayer(t *testing.T) {
	content := tarOf(t, map[string]string{"etc/": "", "etc/big": strings.Repeat("0123456789abcdef", 4096), "etc/small": "x"})
	gz := gzipOf(t, content)
	cutGzip := gz[:len(gz)/2]
	// Cut at an entry boundary: every header and data block is whole, only
	// the end-of-archive marker and the last entry are missing.
	cutTar := content[:512+512+4096*16]

	t.Run("rootfs tar.gz", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "rootfs.tar.gz")
		writeFile(t, src, cutGzip)
		loadFails(t, src, "layer "+digestOf(cutGzip)+" is truncated or corrupt", "unexpected EOF")
	})
	t.Run("rootfs tar", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "rootfs.tar")
		writeFile(t, src, content[:len(content)/2])
		loadFails(t, src, "is truncated or corrupt")
	})
	t.Run("layout layer matching its digest", func(t *testing.T) {
		dir := t.TempDir()
		descs := writeLayout(t, dir, layoutSpec{layers: [][]byte{cutGzip}, config: testConfig(hostArch)})
		loadFails(t, dir, "layer "+descs[0].Digest+" is truncated or corrupt")
	})
	t.Run("layout tar cut at an entry boundary", func(t *testing.T) {
		dir := t.TempDir()
		descs := writeLayout(t, dir, layoutSpec{layers: [][]byte{cutTar}, config: testConfig(hostArch)})
		loadFails(t, dir, "layer "+descs[0].Digest+" is truncated or corrupt", "end-of-archive")
	})
	t.Run("layout blob shorter than its descriptor", func(t *testing.T) {
		dir := t.TempDir()
		descs := writeLayout(t, dir, layoutSpec{layers: [][]byte{gz}, config: testConfig(hostArch, gz)})
		writeFile(t, filepath.Join(dir, blobPath(descs[0].Digest)), cutGzip)
		loadFails(t, dir, "layer "+descs[0].Digest+" is truncated or corrupt", "the manifest says")
	})
}

func TestLoadDiffIDMismatch(t *testing.T) {
	l := tarOf(t, map[string]string{"a": "a"})
	listed := tarOf(t, map[string]string{"b": "b"})
	cfg := mustJSON(t, testConfig(hostArch, listed))
	cfgName := strings.TrimPrefix(digestOf(cfg), "sha256:") + ".json"
	src := filepath.Join(t.TempDir(), "save.tar")
	writeFile(t, src, tarOf(t, map[string]string{
		"x/layer.tar":   string(l),
		cfgName:         string(cfg),
		"manifest.json": string(mustJSON(t, []dockerManifest{{Config: cfgName, Layers: []string{"x/layer.tar"}}})),
	}))
	loadFails(t, src, "uncompressed content hashes to "+digestOf(l), "the image config says "+digestOf(listed))
}

func TestLoadWrongArchitecture(t *testing.T) {
	other := otherArch()
	layer := gzipOf(t, tarOf(t, map[string]string{"a": "a"}))
	t.Run("index entry", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(randomImage(t, other, 1), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: other})); err != nil {
			t.Fatal(err)
		}
		loadFails(t, dir, "built for linux/"+other, "this host is linux/"+hostArch)
	})
	t.Run("image config", func(t *testing.T) {
		dir := t.TempDir()
		writeLayout(t, dir, layoutSpec{layers: [][]byte{layer}, config: testConfig(other, layer)})
		loadFails(t, dir, "built for "+other, "this host is "+hostArch)
	})
	t.Run("docker save", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "save.tar")
		writeLegacyDockerSave(t, src, layer, layer, other)
		loadFails(t, src, "built for "+other, "this host is "+hostArch)
	})
	t.Run("rootfs executable", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "rootfs.tar")
		writeFile(t, src, tarOf(t, map[string]string{"usr/bin/env": fakeELF(t, other) + "code"}))
		loadFails(t, src, "built for "+other, "this host is "+hostArch)
	})
}

func TestLoadBadSources(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	writeFile(t, text, []byte("these are not the layers you are looking for\n"))
	zstd := filepath.Join(dir, "rootfs.tar.zst")
	writeFile(t, zstd, append(append([]byte(nil), zstdMagic...), 0, 0, 0, 0))
	plainDir := filepath.Join(dir, "plain")
	if err := os.Mkdir(plainDir, 0o755); err != nil {
		t.Fatal(err)
	}
	escape := t.TempDir()
	l := tarOf(t, map[string]string{"a": "a"})
	writeFile(t, filepath.Join(escape, "manifest.json"), mustJSON(t, []dockerManifest{{Config: "../../etc/passwd", Layers: []string{"x/layer.tar"}}}))
	writeFile(t, filepath.Join(escape, "x/layer.tar"), l)
	escapeTar := filepath.Join(dir, "escape.tar")
	tarDir(t, escape, escapeTar)
	zstdLayout := t.TempDir()
	writeLayout(t, zstdLayout, layoutSpec{layers: [][]byte{l}, config: testConfig(hostArch, l),
		descs: []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+zstd", Digest: digestOf(l), Size: int64(len(l))}}})

	cases := []struct {
		name   string
		source string
		wants  []string
	}{
		{"missing file", filepath.Join(dir, "missing.tar"), []string{"no such file"}},
		{"relative missing file", "./nothing-here.tar.gz", []string{"no such file"}},
		{"not a tar", text, []string{"not an OCI layout, a docker save archive or a tar file"}},
		{"zstd file", zstd, []string{"zstd"}},
		{"directory without layout", plainDir, []string{"not an OCI image layout", "oci-layout"}},
		{"path leaving the archive", escapeTar, []string{"leaves the archive"}},
		{"zstd layer", zstdLayout, []string{"zstd-compressed layers are not supported"}},
		{"not a reference", "Not A Reference!", []string{"not a file, a directory or an image reference"}},
		// Port 1 on loopback refuses connections: the registry is unreachable
		// without any traffic leaving the machine.
		{"unreachable registry", "127.0.0.1:1/library/alpine:3.20", []string{"could not reach registry 127.0.0.1:1", "127.0.0.1:1/library/alpine:3.20"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, tc.source, tc.wants...)
		})
	}
}

func TestDetectReference(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"alpine", "index.docker.io/library/alpine:latest"},
		{"docker.io/library/alpine:3.20", "index.docker.io/library/alpine:3.20"},
		{"ghcr.io/owner/app:v1", "ghcr.io/owner/app:v1"},
		{"localhost:5000/app@sha256:" + strings.Repeat("a", 64), "localhost:5000/app@sha256:" + strings.Repeat("a", 64)},
	}
	for _, tc := range cases {
		if looksLikePath(tc.in) {
			t.Errorf("looksLikePath(%q) = true, want a reference", tc.in)
		}
		ref, err := parseReference(tc.in)
		if err != nil {
			t.Errorf("parseReference(%q): %v", tc.in, err)
			continue
		}
		if ref.Name() != tc.want {
			t.Errorf("parseReference(%q) = %s, want %s", tc.in, ref.Name(), tc.want)
		}
	}
	for _, p := range []string{"/tmp/x", "./x", "../x", "~/x", "image.tar", "rootfs.tgz", "rootfs.tar.gz"} {
		if !looksLikePath(p) {
			t.Errorf("looksLikePath(%q) = false, want true", p)
		}
	}
}

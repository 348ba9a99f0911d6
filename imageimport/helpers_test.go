package imageimport

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// otherArch is an architecture that is not the host's.
func otherArch() string {
	if hostArch == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// fakeELF returns the start of a 64-bit little-endian ELF executable for
// arch, enough for elfArch to recognise it.
func fakeELF(t *testing.T, arch string) string {
	t.Helper()
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "riscv64": elf.EM_RISCV, "loong64": elf.EM_LOONGARCH}
	m, ok := machines[arch]
	if !ok {
		t.Fatalf("fakeELF: no machine for %s", arch)
	}
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(m))
	return string(h)
}

// tarOf makes a tar of files (name → content; names ending in "/" are
// directories), in sorted order.
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testConfig is an image config for arch with a recognisable process.
func testConfig(arch string, layers ...[]byte) map[string]any {
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, digestOf(uncompressed(l)))
	}
	return map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/entry"},
			"Cmd":        []string{"serve", "--port=80"},
			"Env":        []string{"PATH=/bin", "MODE=test"},
			"WorkingDir": "/srv",
			"User":       "1000:1000",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
}

// uncompressed returns a layer's tar bytes.
func uncompressed(l []byte) []byte {
	if !bytes.HasPrefix(l, gzipMagic) {
		return l
	}
	zr, err := gzip.NewReader(bytes.NewReader(l))
	if err != nil {
		return l
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return l
	}
	return b
}

// layoutSpec describes a hand-written OCI layout.
type layoutSpec struct {
	layers [][]byte
	config map[string]any
	// platform of the index entry; nil writes none.
	platform *platform
	// descs overrides the layer descriptors (digest, size) when set.
	descs []descriptor
}

// writeLayout writes an OCI image layout into dir and returns the
// descriptors of its layers.
func writeLayout(t testing.TB, dir string, s layoutSpec) []descriptor {
	t.Helper()
	blob := func(b []byte) descriptor {
		d := descriptor{Digest: digestOf(b), Size: int64(len(b))}
		writeFile(t, filepath.Join(dir, blobPath(d.Digest)), b)
		return d
	}
	cfg := blob(mustJSON(t, s.config))
	cfg.MediaType = "application/vnd.oci.image.config.v1+json"
	var layers []descriptor
	for _, l := range s.layers {
		d := blob(l)
		d.MediaType = api.MediaTypeLayerTar
		if bytes.HasPrefix(l, gzipMagic) {
			d.MediaType = api.MediaTypeLayerGzip
		}
		layers = append(layers, d)
	}
	if s.descs != nil {
		layers = s.descs
	}
	m := blob(mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mediaTypeOCIManifest, "config": cfg, "layers": layers}))
	m.MediaType = mediaTypeOCIManifest
	m.Platform = s.platform
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	writeFile(t, filepath.Join(dir, "index.json"), mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []descriptor{m}}))
	return layers
}

// tarDir writes the files under dir into a tar file at out.
func tarDir(t testing.TB, dir, out string) {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, out, tarOf(t, files))
}

// assertEmpty fails unless dir holds no files.
func assertEmpty(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("work directory not empty after a failed import: %v", names)
	}
}

// assertLayerFiles checks that each layer file exists, is named after its
// digest and hashes to it.
func assertLayerFiles(t testing.TB, dir string, img *Image) {
	t.Helper()
	for _, l := range img.Layers {
		if filepath.Dir(l.Path) != dir || filepath.Base(l.Path) != strings.Replace(l.Digest, ":", "-", 1) {
			t.Errorf("layer %s stored as %s, want %s/%s", l.Digest, l.Path, dir, strings.Replace(l.Digest, ":", "-", 1))
		}
		b, err := os.ReadFile(l.Path)
		if err != nil {
			t.Fatal(err)
		}
		if digestOf(b) != l.Digest || int64(len(b)) != l.Size {
			t.Errorf("layer file %s: got %s (%d bytes), want %s (%d bytes)", l.Path, digestOf(b), len(b), l.Digest, l.Size)
		}
	}
}

// appendSymlink adds a symbolic link to the end of a tar made by tarOf.
func appendSymlink(t testing.TB, data []byte, name, target string) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(data[:len(data)-1024]) // drop the end-of-archive blocks
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

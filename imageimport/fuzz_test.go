package imageimport

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadTar feeds any file to Load as an image tarball (an OCI layout,
// a docker save or a rootfs tar, plain or gzipped). Whatever it is, Load
// must not panic; when it fails it leaves the work directory empty, and
// when it succeeds every layer file hashes to its digest.
func FuzzLoadTar(f *testing.F) {
	dir := f.TempDir()
	layer := tarOf(f, map[string]string{"bin/sh": "#!", "etc/hostname": "x"})
	writeLayout(f, filepath.Join(dir, "layout"), layoutSpec{layers: [][]byte{layer}, config: testConfig(hostArch, layer)})
	tarDir(f, filepath.Join(dir, "layout"), filepath.Join(dir, "layout.tar"))
	seed, err := os.ReadFile(filepath.Join(dir, "layout.tar"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(gzipOf(f, seed))
	f.Add(layer)
	f.Add(appendSymlink(f, layer, "etc/passwd", "/etc/shadow"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		img, err := Load(context.Background(), src, work)
		if err != nil {
			assertEmpty(t, work)
			return
		}
		assertLayerFiles(t, work, img)
	})
}

// FuzzCheckQCOW2 checks that the qcow2 header check never panics or
// reads without bound on any bytes, and that what it accepts is a qcow2
// file of a version it supports.
func FuzzCheckQCOW2(f *testing.F) {
	hdr := make([]byte, 104)
	copy(hdr, qcow2Magic)
	hdr[7] = 3     // version
	hdr[23] = 16   // cluster bits
	hdr[31] = 1    // virtual size 1<<... (low byte)
	hdr[103] = 104 // header length
	f.Add(hdr)
	f.Add(append(append([]byte{}, hdr...), make([]byte, 1<<16)...))
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := checkQCOW2(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(data, qcow2Magic) || (info.Version != 2 && info.Version != 3) {
			t.Fatalf("accepted %d bytes as qcow2 version %d", len(data), info.Version)
		}
		if info.ClusterSize < 512 || info.ClusterSize > 2<<20 {
			t.Fatalf("accepted cluster size %d", info.ClusterSize)
		}
	})
}

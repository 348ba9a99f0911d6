package imageimport

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// readLayer returns the headers of a gzip layer by name.
func readLayer(t *testing.T, p string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		out[strings.TrimSuffix(hdr.Name, "/")] = hdr
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries are not sorted: %v", names)
	}
	return out
}

func TestBusybox(t *testing.T) {
	bb := testenv.NeedFile(t, "/bin/busybox")
	work1, work2 := t.TempDir(), t.TempDir()
	img1, err := Busybox(bb, work1)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := Busybox(bb, work2)
	if err != nil {
		t.Fatal(err)
	}
	if len(img1.Layers) != 1 || len(img2.Layers) != 1 {
		t.Fatalf("layers: %d and %d, want 1", len(img1.Layers), len(img2.Layers))
	}
	l := img1.Layers[0]
	if l.Digest != img2.Layers[0].Digest {
		t.Errorf("two builds gave %s and %s, want the same digest", l.Digest, img2.Layers[0].Digest)
	}
	if l.MediaType != api.MediaTypeLayerGzip {
		t.Errorf("media type %s, want gzip", l.MediaType)
	}
	assertLayerFiles(t, work1, img1)
	if !slices.Equal(img1.Config.Cmd, []string{"/bin/sh"}) || !slices.Equal(img1.Config.Env, []string{DefaultPath}) {
		t.Errorf("config %+v, want /bin/sh and PATH", img1.Config)
	}
	if img1.Architecture != hostArch {
		t.Errorf("architecture %q, want %q", img1.Architecture, hostArch)
	}
	if !strings.Contains(img1.Source, bb) {
		t.Errorf("source %q does not name the binary", img1.Source)
	}

	hdrs := readLayer(t, l.Path)
	fi, err := os.Stat(bb)
	if err != nil {
		t.Fatal(err)
	}
	if h := hdrs["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != fi.Size() || h.Mode != 0o755 {
		t.Errorf("bin/busybox = %+v, want a %d-byte executable", h, fi.Size())
	}
	for _, applet := range []string{"sh", "ls", "cat", "["} {
		if h := hdrs["bin/"+applet]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s = %+v, want a symlink to busybox", applet, h)
		}
	}
	for _, name := range []string{"etc/passwd", "etc/group", "etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		if h := hdrs[name]; h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("%s missing", name)
		}
	}
	dirs := map[string]int64{"tmp": 0o1777, "var/tmp": 0o1777, "proc": 0o555, "sys": 0o555, "dev": 0o755, "root": 0o700}
	for name, mode := range dirs {
		if h := hdrs[name]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != mode {
			t.Errorf("%s = %+v, want a directory with mode %o", name, h, mode)
		}
	}
	for name, h := range hdrs {
		if !h.ModTime.Equal(busyboxTime) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want fixed values", name, h.ModTime, h.Uid, h.Gid)
		}
	}

	// Loading the layer back as a root filesystem tarball gives the same
	// blob and recognises the architecture from bin/busybox.
	loaded, err := Load(context.Background(), l.Path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Layers[0].Blob != l.Blob || loaded.Architecture != hostArch {
		t.Errorf("reloaded as %+v (%s), want %+v (%s)", loaded.Layers[0].Blob, loaded.Architecture, l.Blob, hostArch)
	}
}

func TestBusyboxRefuses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "busybox")
	writeFile(t, script, []byte("#!/bin/sh\necho sh\n"))
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "not an ELF executable"},
		{"script", script, "not an ELF executable"},
	}
	if p := dynamicBinary(); p != "" {
		cases = append(cases, struct{ name, path, want string }{"dynamic", p, "is dynamically linked"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			_, err := Busybox(tc.path, work)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			assertEmpty(t, work)
		})
	}
}

// dynamicBinary returns a dynamically linked program of the host, or "".
func dynamicBinary() string {
	for _, p := range []string{"/bin/ls", "/bin/sh", "/usr/bin/env"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if dynamic {
			return p
		}
	}
	return ""
}

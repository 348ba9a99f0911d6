package imageimport

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ouroboros-cloud/ouro/api"
)

// randomImage makes an image of random gzip layers for arch with a
// recognisable config.
func randomImage(t *testing.T, arch string, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(2048, layers)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/entry"}
	cf.Config.Cmd = []string{"serve", "--port=80"}
	cf.Config.Env = []string{"PATH=/bin", "MODE=test"}
	cf.Config.WorkingDir = "/srv"
	cf.Config.User = "1000:1000"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// wantLayers returns the digests and sizes of an image's layers.
func wantLayers(t *testing.T, img v1.Image) []api.Blob {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []api.Blob
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, api.Blob{Digest: d.String(), Size: size, MediaType: api.MediaTypeLayerGzip})
	}
	return out
}

// checkImage compares a loaded image with the layers and config expected.
func checkImage(t *testing.T, dir string, got *Image, want []api.Blob) {
	t.Helper()
	var blobs []api.Blob
	for _, l := range got.Layers {
		blobs = append(blobs, l.Blob)
	}
	if !slices.Equal(blobs, want) {
		t.Errorf("layers = %+v, want %+v", blobs, want)
	}
	wantCfg := api.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"serve", "--port=80"},
		Env: []string{"PATH=/bin", "MODE=test"}, WorkingDir: "/srv", User: "1000:1000"}
	if !slices.Equal(got.Config.Entrypoint, wantCfg.Entrypoint) || !slices.Equal(got.Config.Cmd, wantCfg.Cmd) ||
		!slices.Equal(got.Config.Env, wantCfg.Env) || got.Config.WorkingDir != wantCfg.WorkingDir || got.Config.User != wantCfg.User {
		t.Errorf("config = %+v, want %+v", got.Config, wantCfg)
	}
	if got.Architecture != hostArch {
		t.Errorf("architecture = %q, want %q", got.Architecture, hostArch)
	}
	if got.Source == "" {
		t.Error("source is empty")
	}
	assertLayerFiles(t, dir, got)
}

func TestLoadOCILayout(t *testing.T) {
	img := randomImage(t, hostArch, 3)
	src := t.TempDir()
	p, err := layout.Write(filepath.Join(src, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: hostArch})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, filepath.Join(src, "layout"), filepath.Join(src, "layout.tar"))
	tarData, err := os.ReadFile(filepath.Join(src, "layout.tar"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "layout.tar.gz"), gzipOf(t, tarData))

	for _, source := range []string{"layout", "layout.tar", "layout.tar.gz"} {
		t.Run(source, func(t *testing.T) {
			work := t.TempDir()
			got, err := Load(context.Background(), filepath.Join(src, source), work)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, work, got, wantLayers(t, img))
			if _, err := os.Stat(filepath.Join(src, source)); err != nil {
				t.Errorf("source was touched: %v", err)
			}
			ents, _ := os.ReadDir(work)
			if len(ents) != 3 {
				t.Errorf("work directory holds %d files, want the 3 layers only", len(ents))
			}
		})
	}
}

func TestLoadPicksHostPlatform(t *testing.T) {
	host := randomImage(t, hostArch, 1)
	other := randomImage(t, otherArch(), 1)
	cases := []struct {
		name  string
		write func(p layout.Path) error
	}{
		{"index entries", func(p layout.Path) error {
			if err := p.AppendImage(other, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: otherArch()})); err != nil {
				return err
			}
			return p.AppendImage(host, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: hostArch}))
		}},
		{"nested index", func(p layout.Path) error {
			idx := mutate.AppendManifests(empty.Index,
				mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch()}}},
				mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: hostArch}}})
			return p.AppendIndex(idx)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			p, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(p); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			got, err := Load(context.Background(), dir, work)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, work, got, wantLayers(t, host))
		})
	}
}

// writeLegacyDockerSave writes a tar in the format of "docker save" before
// Docker 25: <id>/layer.tar files (plain tars), <hex>.json config and a
// manifest.json, with a second image layer that repeats the first through
// a symlink as docker does.
func writeLegacyDockerSave(t *testing.T, out string, l1, l2 []byte, arch string) []api.Blob {
	t.Helper()
	cfg := mustJSON(t, testConfig(arch, l1, l2, l1))
	cfgName := strings.TrimPrefix(digestOf(cfg), "sha256:") + ".json"
	files := map[string]string{
		"aaaa/":          "",
		"aaaa/VERSION":   "1.0",
		"aaaa/layer.tar": string(l1),
		"bbbb/":          "",
		"bbbb/layer.tar": string(l2),
		cfgName:          string(cfg),
		"manifest.json":  string(mustJSON(t, []dockerManifest{{Config: cfgName, RepoTags: []string{"app:1"}, Layers: []string{"aaaa/layer.tar", "bbbb/layer.tar", "cccc/layer.tar"}}})),
		"repositories":   `{"app":{"1":"bbbb"}}`,
	}
	data := tarOf(t, files)
	// Append cccc/layer.tar -> ../aaaa/layer.tar by rewriting with a link.
	data = appendSymlink(t, data, "cccc/layer.tar", "../aaaa/layer.tar")
	writeFile(t, out, data)
	return []api.Blob{
		{Digest: digestOf(l1), Size: int64(len(l1)), MediaType: api.MediaTypeLayerTar},
		{Digest: digestOf(l2), Size: int64(len(l2)), MediaType: api.MediaTypeLayerTar},
		{Digest: digestOf(l1), Size: int64(len(l1)), MediaType: api.MediaTypeLayerTar},
	}
}

func TestLoadDockerSave(t *testing.T) {
	l1 := tarOf(t, map[string]string{"etc/": "", "etc/os-release": "ID=test\n"})
	l2 := tarOf(t, map[string]string{"srv/": "", "srv/app": "hello\n"})
	g1 := gzipOf(t, l1)

	cases := []struct {
		name  string
		write func(t *testing.T, out string) []api.Blob
	}{
		{"legacy", func(t *testing.T, out string) []api.Blob {
			return writeLegacyDockerSave(t, out, l1, l2, hostArch)
		}},
		{"oci layout inside", func(t *testing.T, out string) []api.Blob {
			dir := t.TempDir()
			descs := writeLayout(t, dir, layoutSpec{layers: [][]byte{g1, l2}, config: testConfig(hostArch, g1, l2)})
			cfg := mustJSON(t, testConfig(hostArch, g1, l2))
			writeFile(t, filepath.Join(dir, "manifest.json"), mustJSON(t, []dockerManifest{{
				Config: blobPath(digestOf(cfg)), RepoTags: []string{"app:1"},
				Layers: []string{blobPath(descs[0].Digest), blobPath(descs[1].Digest)},
			}}))
			tarDir(t, dir, out)
			return []api.Blob{
				{Digest: digestOf(g1), Size: int64(len(g1)), MediaType: api.MediaTypeLayerGzip},
				{Digest: digestOf(l2), Size: int64(len(l2)), MediaType: api.MediaTypeLayerTar},
			}
		}},
		{"go-containerregistry tarball", func(t *testing.T, out string) []api.Blob {
			img := randomImage(t, hostArch, 2)
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := tarball.Write(name.MustParseReference("registry.test/app:1"), img, f); err != nil {
				t.Fatal(err)
			}
			return wantLayers(t, img)
		}},
		{"gzip-compressed legacy", func(t *testing.T, out string) []api.Blob {
			want := writeLegacyDockerSave(t, out+".plain", l1, l2, hostArch)
			data, err := os.ReadFile(out + ".plain")
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, out, gzipOf(t, data))
			return want
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "image.tar")
			want := tc.write(t, src)
			work := t.TempDir()
			got, err := Load(context.Background(), src, work)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, work, got, want)
		})
	}
}

func TestLoadRootfs(t *testing.T) {
	rootfs := tarOf(t, map[string]string{
		"./":            "",
		"./bin/":        "",
		"./bin/sh":      fakeELF(t, hostArch) + "rest of the shell",
		"./etc/":        "",
		"./etc/passwd":  "root:x:0:0::/root:/bin/sh\n",
		"./etc/profile": "export PS1='# '\n",
	})
	cases := []struct {
		file      string
		data      []byte
		mediaType string
	}{
		{"rootfs.tar", rootfs, api.MediaTypeLayerTar},
		{"rootfs.tar.gz", gzipOf(t, rootfs), api.MediaTypeLayerGzip},
		{"rootfs.img", rootfs, api.MediaTypeLayerTar},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), tc.file)
			writeFile(t, src, tc.data)
			work := t.TempDir()
			got, err := Load(context.Background(), src, work)
			if err != nil {
				t.Fatal(err)
			}
			want := api.Blob{Digest: digestOf(tc.data), Size: int64(len(tc.data)), MediaType: tc.mediaType}
			if len(got.Layers) != 1 || got.Layers[0].Blob != want {
				t.Fatalf("layers = %+v, want one %+v", got.Layers, want)
			}
			if !slices.Equal(got.Config.Cmd, []string{"/bin/sh"}) || !slices.Equal(got.Config.Env, []string{DefaultPath}) {
				t.Errorf("config = %+v, want the default", got.Config)
			}
			if got.Architecture != hostArch {
				t.Errorf("architecture = %q, want %q (from bin/sh)", got.Architecture, hostArch)
			}
			assertLayerFiles(t, work, got)
		})
	}
}

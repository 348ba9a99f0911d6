package cli

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/clientconfig"
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
	f := newFakeAPI(t)
	var mu sync.Mutex
	blobs := map[string][]byte{}
	var created api.Image
	mux := http.NewServeMux()
	mux.HandleFunc("HEAD /v1/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := blobs[r.PathValue("digest")]; !ok {
			w.WriteHeader(404)
		}
	})
	mux.HandleFunc("PUT /v1/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(data)
		if "sha256:"+hex.EncodeToString(sum[:]) != r.PathValue("digest") {
			writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "digest mismatch")})
			return
		}
		mu.Lock()
		blobs[r.PathValue("digest")] = data
		mu.Unlock()
		w.WriteHeader(201)
	})
	mux.HandleFunc("POST /v1/projects/{p}/images", func(w http.ResponseWriter, r *http.Request) {
		var img api.Image
		json.NewDecoder(r.Body).Decode(&img)
		img.Status = api.ImageStatus{Phase: "Ready", Size: img.Spec.Layers[0].Size}
		mu.Lock()
		created = img
		mu.Unlock()
		writeJSON(w, 201, img)
	})
	f.srv.Config.Handler = mux
	f.useConfig(t)
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
	mu.Lock()
	defer mu.Unlock()
	if created.Metadata.Name != "box" || created.Metadata.Project != "demo" || created.Spec.Description != "a test box" {
		t.Fatalf("created %+v", created)
	}
	if len(created.Spec.Layers) != 1 || blobs[created.Spec.Layers[0].Digest] == nil {
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
	t.Setenv(EnvToken, "")
	t.Setenv(EnvServer, "")
	a, b := newFakeAPI(t), newFakeAPI(t)
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "a", Server: a.srv.URL, Token: "secret-a"}, true)
	cfg.Upsert(clientconfig.Context{Name: "b", Server: b.srv.URL, Token: "secret-b", Project: "pb"}, false)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "", "context", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "*         a") || strings.Contains(r.stdout, "secret") {
		t.Fatalf("context list: exit %d stdout %q", r.code, r.stdout)
	}
	// --context picks another cloud for one command.
	if r := runCLI(t, nil, "", "--context", "b", "instance", "list"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := b.requestsSeen(); len(got) != 1 || got[0].Path != "/v1/projects/pb/instances" || got[0].Auth != "Bearer secret-b" {
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

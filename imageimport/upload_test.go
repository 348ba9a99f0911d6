package imageimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// fakeServer implements the blob and image routes of the API, enough to
// watch Upload at work.
type fakeServer struct {
	mu     sync.Mutex
	blobs  map[string][]byte
	puts   []string // digests PUT, in order
	keys   []string // Idempotency-Key of each image create
	images map[string]*api.Image
	byKey  map[string]*api.Image
	// failPuts makes that many PUTs answer 503 first.
	failPuts int
	// refusePuts makes every PUT answer 400.
	refusePuts bool
}

func startFakeServer(t *testing.T) (*fakeServer, *client.Client) {
	t.Helper()
	f := &fakeServer{blobs: map[string][]byte{}, images: map[string]*api.Image{}, byKey: map[string]*api.Image{}}
	mux := http.NewServeMux()
	mux.HandleFunc("HEAD /v1/blobs/{digest}", f.headBlob)
	mux.HandleFunc("PUT /v1/blobs/{digest}", f.putBlob)
	mux.HandleFunc("POST /v1/projects/{project}/images", f.createImage)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Server: srv.URL, Token: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// state returns copies of what the server saw, under its lock.
func (f *fakeServer) state() (puts, keys []string, images map[string]api.Image, blobs map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	images = map[string]api.Image{}
	for k, v := range f.images {
		images[k] = *v
	}
	blobs = map[string][]byte{}
	for k, v := range f.blobs {
		blobs[k] = v
	}
	return slices.Clone(f.puts), slices.Clone(f.keys), images, blobs
}

// set changes the server's behaviour under its lock.
func (f *fakeServer) set(fn func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func fail(w http.ResponseWriter, e *api.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: e})
}

func (f *fakeServer) headBlob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.blobs[r.PathValue("digest")]; !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (f *fakeServer) putBlob(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	body, err := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, digest)
	switch {
	case err != nil:
		fail(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalid, Message: err.Error()})
	case f.refusePuts:
		fail(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalid, Message: "refused"})
	case f.failPuts > 0:
		f.failPuts--
		fail(w, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "try again"})
	case digestOf(body) != digest || int64(len(body)) != r.ContentLength:
		fail(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalid, Message: "body hashes to " + digestOf(body)})
	default:
		f.blobs[digest] = body
		w.WriteHeader(http.StatusCreated)
	}
}

func (f *fakeServer) createImage(w http.ResponseWriter, r *http.Request) {
	var img api.Image
	if err := json.NewDecoder(r.Body).Decode(&img); err != nil {
		fail(w, api.Invalid("", "", "%v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Header.Get("Idempotency-Key")
	f.keys = append(f.keys, key)
	w.Header().Set("Content-Type", "application/json")
	if prev, ok := f.byKey[key]; ok && key != "" {
		json.NewEncoder(w).Encode(prev)
		return
	}
	if _, ok := f.images[img.Metadata.Name]; ok {
		fail(w, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Message: "exists"})
		return
	}
	for i, l := range img.Spec.Blobs() {
		if b, ok := f.blobs[l.Digest]; !ok || int64(len(b)) != l.Size {
			fail(w, api.Invalid(fmt.Sprintf("blob %d", i), "", "blob missing"))
			return
		}
	}
	img.Metadata.Project = r.PathValue("project")
	img.Metadata.UID = "uid-" + img.Metadata.Name
	f.images[img.Metadata.Name] = &img
	f.byKey[key] = &img
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(&img)
}

// loadedImage returns a three-layer image loaded from a layout.
func loadedImage(t *testing.T) *Image {
	t.Helper()
	var layers [][]byte
	for _, s := range []string{"one", "two", "three"} {
		layers = append(layers, gzipOf(t, tarOf(t, map[string]string{s: strings.Repeat(s, 1000)})))
	}
	dir := t.TempDir()
	writeLayout(t, dir, layoutSpec{layers: layers, config: testConfig(hostArch, layers...)})
	img, err := Load(context.Background(), dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestUpload(t *testing.T) {
	img := loadedImage(t)
	srv, c := startFakeServer(t)
	present, err := os.ReadFile(img.Layers[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	srv.set(func(f *fakeServer) { f.blobs[img.Layers[1].Digest] = present })

	var mu sync.Mutex
	var calls [][2]int64
	opts := UploadOptions{Public: true, Description: "test image", Progress: func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, [2]int64{done, total})
	}}
	got, err := Upload(context.Background(), c, "demo", "app", img, opts)
	if err != nil {
		t.Fatal(err)
	}

	puts, _, images, blobs := srv.state()
	wantPuts := []string{img.Layers[0].Digest, img.Layers[2].Digest}
	if !slices.Equal(puts, wantPuts) {
		t.Errorf("PUT blobs %v, want %v (the present blob must not be sent again)", puts, wantPuts)
	}
	for _, l := range img.Layers {
		b := blobs[l.Digest]
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != l.Digest {
			t.Errorf("server holds %s with content hashing to %x", l.Digest, sum)
		}
	}
	stored, ok := images["app"]
	if !ok {
		t.Fatal("no image created")
	}
	spec := stored.Spec
	if spec.Format != api.FormatOCI || !spec.Public || spec.Description != "test image" ||
		spec.Architecture != hostArch || spec.Source != img.Source || len(spec.Layers) != 3 ||
		!slices.Equal(spec.Config.Cmd, img.Config.Cmd) || spec.Config.WorkingDir != "/srv" {
		t.Errorf("created spec = %+v", spec)
	}
	for i, l := range spec.Layers {
		if l != img.Layers[i].Blob {
			t.Errorf("spec.layers[%d] = %+v, want %+v", i, l, img.Layers[i].Blob)
		}
	}
	if got.Metadata.UID != "uid-app" || got.Metadata.Project != "demo" {
		t.Errorf("returned metadata %+v, want the server's answer", got.Metadata)
	}

	var total int64
	for _, l := range img.Layers {
		total += l.Size
	}
	mu.Lock()
	seen := slices.Clone(calls)
	mu.Unlock()
	if len(seen) == 0 || seen[len(seen)-1] != [2]int64{total, total} {
		t.Fatalf("progress calls %v, want to end at %d of %d", seen, total, total)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i][0] < seen[i-1][0] || seen[i][1] != total {
			t.Fatalf("progress went from %v to %v", seen[i-1], seen[i])
		}
	}

	// A retried import sends nothing again and the same key.
	if _, err := Upload(context.Background(), c, "demo", "app", img, opts); err != nil {
		t.Fatalf("retried upload: %v", err)
	}
	puts, keys, images, _ := srv.state()
	if len(puts) != 2 {
		t.Errorf("retried upload sent blobs again: %v", puts)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("Idempotency-Keys %q, want the same non-empty key twice", keys)
	}
	if len(images) != 1 {
		t.Errorf("server holds %d images, want 1", len(images))
	}
	if k := IdempotencyKey("demo", "other", img); k == keys[0] {
		t.Error("another image name gives the same idempotency key")
	}
}

func TestUploadRetriesServerErrors(t *testing.T) {
	img := loadedImage(t)
	srv, c := startFakeServer(t)
	srv.set(func(f *fakeServer) { f.failPuts = 1 })
	if _, err := Upload(context.Background(), c, "demo", "app", img, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	puts, _, _, blobs := srv.state()
	if len(puts) != 4 || puts[0] != puts[1] {
		t.Errorf("PUTs %v, want the first layer twice then the others", puts)
	}
	if len(blobs) != 3 {
		t.Errorf("server holds %d blobs, want 3", len(blobs))
	}
}

func TestUploadFails(t *testing.T) {
	img := loadedImage(t)
	t.Run("refused blob", func(t *testing.T) {
		srv, c := startFakeServer(t)
		srv.set(func(f *fakeServer) { f.refusePuts = true })
		_, err := Upload(context.Background(), c, "demo", "app", img, UploadOptions{})
		if err == nil || !strings.Contains(err.Error(), "upload layer "+img.Layers[0].Digest) {
			t.Fatalf("err = %v, want an upload error naming the layer", err)
		}
		puts, _, images, _ := srv.state()
		if len(puts) != 1 || len(images) != 0 {
			t.Errorf("PUTs %v and %d images after a refusal, want one PUT and no image", puts, len(images))
		}
	})
	t.Run("layer file changed", func(t *testing.T) {
		srv, c := startFakeServer(t)
		changed := *img
		changed.Layers = slices.Clone(img.Layers)
		p := filepath.Join(t.TempDir(), "layer")
		writeFile(t, p, []byte("short"))
		changed.Layers[0].Path = p
		_, err := Upload(context.Background(), c, "demo", "app", &changed, UploadOptions{})
		if err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
			t.Fatalf("err = %v, want a changed-file error", err)
		}
		if puts, _, _, _ := srv.state(); len(puts) != 0 {
			t.Errorf("PUTs %v, want none", puts)
		}
	})
	t.Run("invalid name", func(t *testing.T) {
		srv, c := startFakeServer(t)
		_, err := Upload(context.Background(), c, "demo", "Bad_Name", img, UploadOptions{})
		if err == nil || !strings.Contains(err.Error(), "metadata.name") {
			t.Fatalf("err = %v, want an invalid name error", err)
		}
		if _, keys, _, _ := srv.state(); len(keys) != 0 {
			t.Error("an image was created with an invalid name")
		}
	})
}

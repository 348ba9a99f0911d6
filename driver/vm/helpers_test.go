package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// fakeBlobs serves blobs from memory or files, counting opens. A blob
// can be made to serve other content than its digest says.
type fakeBlobs struct {
	mu    sync.Mutex
	data  map[string][]byte // digest → content
	files map[string]string // digest → file
	opens atomic.Int32
}

func newFakeBlobs() *fakeBlobs {
	return &fakeBlobs{data: map[string][]byte{}, files: map[string]string{}}
}

// add stores content and returns its blob.
func (f *fakeBlobs) add(content []byte, mediaType string) api.Blob {
	sum := sha256.Sum256(content)
	b := api.Blob{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(content)), MediaType: mediaType}
	f.mu.Lock()
	f.data[b.Digest] = content
	f.mu.Unlock()
	return b
}

// addFile serves a file's content and returns its blob.
func (f *fakeBlobs) addFile(t testing.TB, path, mediaType string) api.Blob {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		t.Fatal(err)
	}
	b := api.Blob{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n, MediaType: mediaType}
	f.mu.Lock()
	f.files[b.Digest] = path
	f.mu.Unlock()
	return b
}

// corrupt makes digest serve content instead.
func (f *fakeBlobs) corrupt(digest string, content []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[digest] = content
	delete(f.files, digest)
}

func (f *fakeBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	f.opens.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.files[digest]; ok {
		return os.Open(p)
	}
	if d, ok := f.data[digest]; ok {
		return io.NopCloser(bytes.NewReader(d)), nil
	}
	return nil, fmt.Errorf("blob %s: not found", digest)
}

// testDriver returns a driver on fresh directories with cfg's other
// fields.
func testDriver(t testing.TB, blobs *fakeBlobs, change func(*Config)) *Driver {
	t.Helper()
	run, err := os.MkdirTemp("/tmp", "ovm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	cfg := Config{Dir: t.TempDir(), RunDir: run, Blobs: blobs, Accel: "tcg",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if change != nil {
		change(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testID returns a new instance id: a test's VMs never share one with a
// test running at the same time in another process, whose QEMU would
// otherwise be taken for (and killed or reset as) this test's.
func testID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

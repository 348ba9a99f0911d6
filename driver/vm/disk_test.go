package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestImageBlobsCachedOnceAndVerified(t *testing.T) {
	blobs := newFakeBlobs()
	d := testDriver(t, blobs, nil)
	ctx := context.Background()
	good := blobs.add([]byte("a kernel"), api.MediaTypeKernel)

	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range paths {
		wg.Go(func() { paths[i], errs[i] = d.images.Fetch(ctx, good, nil) })
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("call %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if n := blobs.opens.Load(); n != 1 {
		t.Errorf("8 concurrent calls fetched %d times, want once", n)
	}
	if data, err := os.ReadFile(paths[0]); err != nil || string(data) != "a kernel" {
		t.Errorf("cached content %q, %v", data, err)
	}
	if fi, err := os.Stat(paths[0]); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("cached blob mode %v, want read-only 0444", fi.Mode())
	}

	bad := []struct {
		name    string
		content []byte
		size    int64
		want    string
	}{
		{"content does not match the digest", []byte("evil kernel"), 0, "digest mismatch"},
		{"truncated download", []byte("a ker"), 0, "digest mismatch"},
		{"size differs from the image's", nil, 3, "size mismatch"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			b := blobs.add([]byte("content of "+tc.name), api.MediaTypeKernel)
			if tc.content != nil {
				blobs.corrupt(b.Digest, tc.content)
			}
			if tc.size != 0 {
				b.Size = tc.size
			}
			_, err := d.images.Fetch(ctx, b, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			hexd := strings.TrimPrefix(b.Digest, "sha256:")
			if fileExists(filepath.Join(d.images.Dir(), hexd)) {
				t.Error("a bad download became a cached blob")
			}
			if left, _ := filepath.Glob(filepath.Join(d.images.Dir(), ".tmp-*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}

	t.Run("a check refuses the content", func(t *testing.T) {
		b := blobs.add([]byte("not a disk"), api.MediaTypeDiskQCOW2)
		_, err := d.images.Fetch(ctx, b, func(string) error { return os.ErrInvalid })
		if err == nil || fileExists(filepath.Join(d.images.Dir(), strings.TrimPrefix(b.Digest, "sha256:"))) {
			t.Fatalf("refused content was cached (err %v)", err)
		}
	})
	t.Run("stale download of a crash is replaced", func(t *testing.T) {
		b := blobs.add([]byte("after a crash"), api.MediaTypeInitrd)
		hexd := strings.TrimPrefix(b.Digest, "sha256:")
		stale := filepath.Join(d.images.Dir(), ".tmp-"+hexd+"-123")
		if err := os.WriteFile(stale, []byte("after a cr"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := d.images.Fetch(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(p); string(data) != "after a crash" {
			t.Errorf("content %q", data)
		}
		if fileExists(stale) {
			t.Error("stale partial download left")
		}
	})
	t.Run("bad digest", func(t *testing.T) {
		if _, err := d.images.Fetch(ctx, api.Blob{Digest: "sha256:../../etc/passwd"}, nil); err == nil {
			t.Fatal("a digest that is a path was accepted")
		}
	})
}

func TestOverlaySize(t *testing.T) {
	const gib = int64(1) << 30
	tests := []struct {
		base, diskGiB, want int64
	}{
		{base: 2 * gib, diskGiB: 10, want: 10 * gib},       // grown to the flavor
		{base: 2 * gib, diskGiB: 1, want: 2 * gib},         // never shrunk below the base
		{base: 3*gib + 512, diskGiB: 3, want: 3*gib + 512}, // nor by rounding
		{base: 64 << 20, diskGiB: 0, want: 64 << 20},       // no disk size: the base's
	}
	for _, tc := range tests {
		if got := overlaySize(tc.base, tc.diskGiB); got != tc.want {
			t.Errorf("overlaySize(%d, %d) = %d, want %d", tc.base, tc.diskGiB, got, tc.want)
		}
	}
}

// TestOverlayWithQemuImg makes overlays of real base disks with qemu-img.
func TestOverlayWithQemuImg(t *testing.T) {
	testenv.NeedBinary(t, "qemu-img")
	blobs := newFakeBlobs()
	d := testDriver(t, blobs, nil)
	ctx := context.Background()
	dir := t.TempDir()

	qcow := filepath.Join(dir, "base.qcow2")
	if _, err := d.run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M"); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "base.raw")
	if _, err := d.run(ctx, "qemu-img", "create", "-q", "-f", "raw", raw, "96M"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, base, format string
		diskGiB, want      int64
	}{
		{"qcow2 grown to the flavor", qcow, "qcow2", 2, 2 << 30},
		{"raw kept at its size", raw, "raw", 0, 96 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := blobs.addFile(t, tc.base, "")
			cached, err := d.images.Fetch(ctx, b, d.checkBaseDisk(ctx, tc.format))
			if err != nil {
				t.Fatal(err)
			}
			p := d.paths("i-" + tc.format)
			if err := os.MkdirAll(p.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := d.ensureOverlay(ctx, p, cached, tc.format, tc.diskGiB); err != nil {
				t.Fatal(err)
			}
			info, err := d.diskInfo(ctx, p.disk, "qcow2")
			if err != nil {
				t.Fatal(err)
			}
			if info.VirtualSize != tc.want || info.BackingFilename != cached {
				t.Errorf("overlay: size %d backing %q, want %d on %s", info.VirtualSize, info.BackingFilename, tc.want, cached)
			}
			if fileExists(p.disk + ".tmp") {
				t.Error("temporary overlay left")
			}
			// Again: the existing disk is kept as is.
			fi, _ := os.Stat(p.disk)
			if err := d.ensureOverlay(ctx, p, cached, tc.format, tc.diskGiB+5); err != nil {
				t.Fatal(err)
			}
			if fi2, _ := os.Stat(p.disk); !fi2.ModTime().Equal(fi.ModTime()) {
				t.Error("an existing overlay was made again")
			}
		})
	}

	t.Run("a qcow2 with a backing file is refused", func(t *testing.T) {
		sneaky := filepath.Join(dir, "sneaky.qcow2")
		if _, err := d.run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, sneaky); err != nil {
			t.Fatal(err)
		}
		b := blobs.addFile(t, sneaky, api.MediaTypeDiskQCOW2)
		_, err := d.images.Fetch(ctx, b, d.checkBaseDisk(ctx, "qcow2"))
		if err == nil || !strings.Contains(err.Error(), "backing file") {
			t.Fatalf("err = %v, want a refusal naming the backing file", err)
		}
	})
	t.Run("a raw file is not a qcow2 disk", func(t *testing.T) {
		b := blobs.add([]byte(strings.Repeat("x", 4096)), api.MediaTypeDiskQCOW2)
		if _, err := d.images.Fetch(ctx, b, d.checkBaseDisk(ctx, "qcow2")); err == nil {
			t.Fatal("garbage accepted as a qcow2 disk")
		}
	})
}

package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
)

// tinyELF returns a minimal x86_64 ELF file whose one PT_NOTE segment
// holds a note of name and type.
func tinyELF(name string, typ uint32) []byte {
	le := binary.LittleEndian
	var note bytes.Buffer
	nameb := append([]byte(name), 0)
	binary.Write(&note, le, uint32(len(nameb)))
	binary.Write(&note, le, uint32(4))
	binary.Write(&note, le, typ)
	note.Write(nameb)
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}
	binary.Write(&note, le, uint32(0x1000000)) // the entry point
	const ehsize, phsize = 64, 56
	f := make([]byte, ehsize+phsize)
	copy(f, "\x7fELF\x02\x01\x01")
	le.PutUint16(f[16:], 2)  // ET_EXEC
	le.PutUint16(f[18:], 62) // EM_X86_64
	le.PutUint32(f[20:], 1)
	le.PutUint64(f[32:], ehsize) // e_phoff
	le.PutUint16(f[52:], ehsize)
	le.PutUint16(f[54:], phsize)
	le.PutUint16(f[56:], 1) // e_phnum
	ph := f[ehsize:]
	le.PutUint32(ph[0:], 4) // PT_NOTE
	le.PutUint64(ph[8:], ehsize+phsize)
	le.PutUint64(ph[32:], uint64(note.Len()))
	le.PutUint64(ph[40:], uint64(note.Len()))
	return append(f, note.Bytes()...)
}

// bzImage wraps payload in a bzImage's setup header (boot protocol
// 2.15, one setup sector), followed by the 4 bytes of size that real
// images carry.
func bzImage(payload []byte) []byte {
	img := make([]byte, 2*512)
	img[0x1f1] = 1
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 0)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)))
	return append(append(img, payload...), 1, 2, 3, 4)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	return zw.EncodeAll(b, nil)
}

func TestExtractVmlinux(t *testing.T) {
	pvh := tinyELF("Xen", xenPhys32Entry)
	for _, tc := range []struct {
		name  string
		image []byte
		noPVH bool // want a *noPVH error
	}{
		{"gzip payload with a PVH note", bzImage(gzipped(pvh)), false},
		{"zstd payload with a PVH note", bzImage(zstded(pvh)), false},
		{"no PVH note", bzImage(gzipped(tinyELF("Xen", 5))), true},
		{"another vendor's note", bzImage(gzipped(tinyELF("GNU", xenPhys32Entry))), true},
		{"not an ELF file", bzImage(gzipped([]byte("just text"))), true},
		{"uncompressed payload", bzImage(pvh), true},
		{"corrupt gzip", bzImage(append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{0xff}, 64)...)), true},
		{"not a bzImage", []byte("an ELF or a script, whatever: no setup header"), true},
		{"old boot protocol", func() []byte { b := bzImage(gzipped(pvh)); b[0x206] = 0x04; b[0x207] = 0x02; return b }(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "vmlinux")
			if err := os.WriteFile(src, tc.image, 0o644); err != nil {
				t.Fatal(err)
			}
			err := extractVmlinux(context.Background(), src, dst)
			var no *noPVH
			if tc.noPVH != errors.As(err, &no) || (!tc.noPVH && err != nil) {
				t.Fatalf("extractVmlinux = %v; want a *noPVH error: %v", err, tc.noPVH)
			}
			if !tc.noPVH {
				got, _ := os.ReadFile(dst)
				if !bytes.Equal(got, pvh) {
					t.Errorf("vmlinux is %d bytes, want the %d of the ELF file", len(got), len(pvh))
				}
			}
		})
	}
}

func TestBuildPVHKernelHostKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86_64 kernels only")
	}
	kernel, _ := testimage.Tiny(t)
	dir := t.TempDir()
	if err := buildPVHKernel(context.Background(), api.Blob{}, kernel, pvhVariant, dir); err != nil {
		t.Fatal(err)
	}
	if why, err := os.ReadFile(filepath.Join(dir, "none")); err == nil {
		t.Skipf("the host's kernel has no PVH form here: %s", why)
	}
	if err := checkPVHNote(filepath.Join(dir, vmlinuxName)); err != nil {
		t.Fatal(err)
	}
}

func TestBuildPVHKernelRecordsWhyNot(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(src, bzImage(gzipped([]byte("no kernel"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := buildPVHKernel(context.Background(), api.Blob{}, src, pvhVariant, dir); err != nil {
		t.Fatal(err)
	}
	if fileExists(filepath.Join(dir, vmlinuxName)) {
		t.Error("vmlinux written for a payload that is no kernel")
	}
	if why, err := os.ReadFile(filepath.Join(dir, "none")); err != nil || len(why) == 0 {
		t.Errorf("no reason recorded: %q %v", why, err)
	}
}

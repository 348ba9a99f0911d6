package imageimport

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// fakeBzImage returns the start of an x86 bzImage with boot protocol
// 2.15; kernel64 sets XLF_KERNEL_64.
func fakeBzImage(kernel64 bool) []byte {
	b := make([]byte, 8192)
	b[0x1fe], b[0x1ff] = 0x55, 0xaa
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x020f)
	if kernel64 {
		b[0x236] = 1
	}
	return b
}

// fakeImage returns the start of an arm64 or riscv64 Image.
func fakeImage(magic string) []byte {
	b := make([]byte, 4096)
	copy(b[0x38:], magic)
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeZboot returns the start of an EFI zboot image for a PE machine.
func fakeZboot(machine uint16) []byte {
	b := make([]byte, 4096)
	copy(b, "MZ")
	copy(b[4:], "zimg")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], machine)
	return b
}

// fakeVmlinux returns an ELF header of a 64-bit executable for arch that
// debug/elf reads.
func fakeVmlinux(t *testing.T, arch string) []byte {
	b := append([]byte(fakeELF(t, arch)), make([]byte, 4096)...)
	binary.LittleEndian.PutUint32(b[20:], 1) // e_version
	return b
}

func TestKernelArch(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bzImage 64-bit", fakeBzImage(true), "amd64"},
		{"bzImage 32-bit", fakeBzImage(false), "386"},
		{"arm64 Image", fakeImage("ARM\x64"), "arm64"},
		{"riscv64 Image", fakeImage("RSC\x05"), "riscv64"},
		{"gzip arm64 Image", gzipped(t, fakeImage("ARM\x64")), "arm64"},
		{"zboot arm64", fakeZboot(0xaa64), "arm64"},
		{"ELF vmlinux", fakeVmlinux(t, "riscv64"), "riscv64"},
		{"text", []byte("#!/bin/sh\necho not a kernel\n"), ""},
		{"empty", nil, ""},
		{"gzip of junk", gzipped(t, make([]byte, 4096)), ""},
		{"zboot of another machine", fakeZboot(0x14c), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kernelArch(bytes.NewReader(tt.data), int64(len(tt.data)))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("kernelArch = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("kernelArch = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestKernelArchOfHostKernel reads the Debian kernel installed on the
// machine, a real bzImage.
func TestKernelArchOfHostKernel(t *testing.T) {
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		testenv.NeedFile(t, "/boot/vmlinuz-*")
	}
	f, err := os.Open(kernels[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	got, err := kernelArch(f, fi.Size())
	if err != nil || got != hostArch {
		t.Errorf("kernelArch(%s) = %q, %v; want %q", kernels[0], got, err, hostArch)
	}
	initrd := strings.Replace(kernels[0], "vmlinuz-", "initrd.img-", 1)
	g, err := os.Open(initrd)
	if err != nil {
		t.Skipf("no initrd beside %s: %v", kernels[0], err)
	}
	defer g.Close()
	if err := checkInitrd(g); err != nil {
		t.Errorf("checkInitrd(%s): %v", initrd, err)
	}
}

func TestCheckInitrd(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"cpio", []byte("070701000000"), true},
		{"gzip", gzipped(t, []byte("070701")), true},
		{"zstd", append(bytes.Clone(zstdMagic), 0), true},
		{"xz", append(bytes.Clone(xzMagic), 0), true},
		{"empty", nil, false},
		{"text", []byte("hello world"), false},
		{"a kernel", fakeBzImage(true), false},
	} {
		if err := checkInitrd(bytes.NewReader(tt.data)); (err == nil) != tt.ok {
			t.Errorf("%s: checkInitrd = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

package imageimport

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// kernelArch recognises a Linux kernel image and returns the architecture
// it runs on (Go names): an x86 bzImage, an arm64 or riscv64 Image (also
// gzip-compressed, as Debian ships arm64 kernels), an EFI zboot image or
// an ELF vmlinux. Anything else is refused: QEMU would fail to boot it
// much later, on some host, with a less helpful message.
func kernelArch(r io.ReaderAt, size int64) (string, error) {
	head := make([]byte, 4096)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read kernel: %w", err)
	}
	head = head[:n]
	le := binary.LittleEndian
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0x1fe, "\x55\xaa") && at(0x202, "HdrS"):
		// x86 boot protocol; from 2.12 on, xloadflags bit 0 says the
		// kernel has a 64-bit entry point.
		if len(head) >= 0x238 && le.Uint16(head[0x206:]) >= 0x20c && head[0x236]&1 != 0 {
			return "amd64", nil
		}
		return "386", nil
	case at(0x38, "ARM\x64"):
		return "arm64", nil
	case at(0x38, "RSC\x05"):
		return "riscv64", nil
	case at(0, "MZ") && at(4, "zimg"):
		return peMachine(head)
	case at(0, elf.ELFMAG):
		f, err := elf.NewFile(io.NewSectionReader(r, 0, size))
		if err != nil {
			return "", fmt.Errorf("the kernel is a broken ELF file: %w", err)
		}
		if arch := goArch(f.Machine, f.Class, f.ByteOrder); arch != "" {
			return arch, nil
		}
		return "", fmt.Errorf("the kernel is an ELF file for %v, which is not supported", f.Machine)
	case bytes.HasPrefix(head, gzipMagic):
		// A gzip file is a kernel only if it holds an Image; an initrd
		// given by mistake is compressed too.
		inner := make([]byte, 64)
		if zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size)); err == nil {
			if _, err := io.ReadFull(zr, inner); err == nil {
				switch string(inner[0x38:0x3c]) {
				case "ARM\x64":
					return "arm64", nil
				case "RSC\x05":
					return "riscv64", nil
				}
			}
		}
	}
	return "", errors.New("the kernel is not a Linux kernel image QEMU can boot directly: want an x86 bzImage (/boot/vmlinuz-*), an arm64 or riscv64 Image (possibly gzip-compressed), an EFI zboot image or an ELF vmlinux")
}

// peMachine reads the machine of a PE/COFF file (an EFI zboot kernel).
func peMachine(head []byte) (string, error) {
	if len(head) < 0x40 {
		return "", errors.New("the kernel's PE header is cut short")
	}
	off := int(binary.LittleEndian.Uint32(head[0x3c:]))
	if off < 0 || off+6 > len(head) || string(head[off:off+4]) != "PE\x00\x00" {
		return "", errors.New("the kernel's PE header is not valid")
	}
	switch m := binary.LittleEndian.Uint16(head[off+4:]); m {
	case 0x8664:
		return "amd64", nil
	case 0xaa64:
		return "arm64", nil
	case 0x5064:
		return "riscv64", nil
	default:
		return "", fmt.Errorf("the kernel is a PE file for machine %#x, which is not supported", m)
	}
}

// initrdMagics start the formats Linux unpacks an initramfs from: cpio
// archives and the compressors the kernel supports.
var initrdMagics = [][]byte{
	[]byte("070701"), []byte("070702"), []byte("070707"), // cpio newc, crc, odc
	gzipMagic, bzipMagic, xzMagic, zstdMagic,
	{0x5d, 0x00, 0x00},       // lzma
	{0x89, 'L', 'Z', 'O'},    // lzop
	{0x02, 0x21, 0x4c, 0x18}, // lz4 legacy
}

// checkInitrd accepts a file that starts like an initramfs.
func checkInitrd(r io.ReaderAt) error {
	head := make([]byte, 8)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read initrd: %w", err)
	}
	if n == 0 {
		return errors.New("the initrd is empty")
	}
	for _, m := range initrdMagics {
		if bytes.HasPrefix(head[:n], m) {
			return nil
		}
	}
	return errors.New("the initrd is not an initramfs: want a cpio archive, plain or compressed with gzip, bzip2, xz, lzma, lzo, lz4 or zstd (/boot/initrd.img-*)")
}

package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/ouroboros-cloud/ouro/api"
)

// An x86 kernel image (bzImage) boots through real mode: firmware loads
// it, its setup code and decompressor run in the guest, then the kernel.
// Under TCG the guest's decompression alone takes seconds. Kernels built
// with CONFIG_PVH (Debian's, Ubuntu's, Fedora's) also have a 32-bit PVH
// entry point that QEMU jumps to directly when -kernel is the
// uncompressed ELF kernel (vmlinux): no firmware boot loader, no
// decompression. The driver therefore decompresses each kernel blob once
// per host, on the host, into <Dir>/kernels/<hex>-pvh/vmlinux, and boots
// that when it carries the PVH note; the same kernel runs either way.
//
//	kernel blob (bzImage) ─▶ payload (setup header) ─▶ gzip | zstd | xz
//	     ─▶ vmlinux with a Xen PHYS32_ENTRY note ─▶ -kernel vmlinux
//	     (else: an empty directory, and -kernel <bzImage> as before)

// pvhVariant is the kernel cache's variant name.
const pvhVariant = "pvh"

// vmlinuxName is the uncompressed kernel inside a derived directory.
const vmlinuxName = "vmlinux"

// maxVmlinux bounds the uncompressed kernel: a kernel blob is a tenant's
// upload and must not fill the disk by decompressing without end.
const maxVmlinux = 512 << 20

// pvhKernel returns the uncompressed PVH-bootable form of the kernel blob
// b, or "" when it has none (not a bzImage, a compression the driver does
// not read, no PVH entry); then the blob boots as it is. Only x86_64
// kernels have one.
func (d *Driver) pvhKernel(ctx context.Context, b api.Blob) (string, error) {
	if d.arch != "amd64" || d.cfg.NoPVH {
		return "", nil
	}
	dir, err := d.kernels.Ensure(ctx, b, pvhVariant)
	if err != nil {
		return "", fmt.Errorf("uncompressed kernel: %w", err)
	}
	path := filepath.Join(dir, vmlinuxName)
	if !fileExists(path) {
		return "", nil
	}
	return path, nil
}

// buildPVHKernel is the kernel cache's build function: it writes
// dir/vmlinux when the blob is a bzImage whose payload it can decompress
// into an ELF kernel with a PVH entry, and leaves dir empty otherwise
// (with the reason in dir/none, for people).
func buildPVHKernel(ctx context.Context, blob api.Blob, blobPath, variant, dir string) error {
	if variant != pvhVariant {
		return fmt.Errorf("kernel cache: unknown variant %q", variant)
	}
	err := extractVmlinux(ctx, blobPath, filepath.Join(dir, vmlinuxName))
	var no *noPVH
	if errors.As(err, &no) {
		os.Remove(filepath.Join(dir, vmlinuxName))
		return os.WriteFile(filepath.Join(dir, "none"), []byte(no.reason+"\n"), 0o444)
	}
	return err
}

// noPVH says why a kernel has no PVH-bootable form.
type noPVH struct{ reason string }

func (e *noPVH) Error() string { return "no PVH entry: " + e.reason }

// extractVmlinux decompresses the bzImage at src into the ELF kernel at
// dst, which it checks for a PVH entry note. A *noPVH error says the
// kernel has none that the driver can use; other errors are I/O failures.
func extractVmlinux(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	off, size, err := bzImagePayload(f)
	if err != nil {
		return err
	}
	payload := io.NewSectionReader(f, off, size)
	var magic [6]byte
	if _, err := payload.ReadAt(magic[:], 0); err != nil {
		return &noPVH{"payload shorter than its magic"}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o444)
	if err != nil {
		return err
	}
	defer out.Close()
	switch {
	case bytes.HasPrefix(magic[:], []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(payload)
		if err != nil {
			return &noPVH{"gzip payload: " + err.Error()}
		}
		zr.Multistream(false) // the payload is followed by its size
		err = copyBounded(out, zr)
		zr.Close()
		if err != nil {
			return err
		}
	case bytes.HasPrefix(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(payload, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxVmlinux))
		if err != nil {
			return &noPVH{"zstd payload: " + err.Error()}
		}
		err = copyBounded(out, zr)
		zr.Close()
		if err != nil {
			return err
		}
	case bytes.Equal(magic[:], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		if err := unxz(ctx, payload, out); err != nil {
			return err
		}
	default:
		return &noPVH{fmt.Sprintf("payload compression with magic % x is not read", magic[:4])}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return checkPVHNote(dst)
}

// copyBounded copies a decompressed stream, refusing more than
// maxVmlinux bytes; a corrupt stream is a *noPVH.
func copyBounded(w io.Writer, r io.Reader) error {
	n, err := io.Copy(w, io.LimitReader(r, maxVmlinux+1))
	if n > maxVmlinux {
		return &noPVH{fmt.Sprintf("uncompressed kernel larger than %d MiB", maxVmlinux>>20)}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return err // writing failed
		}
		return &noPVH{"decompress: " + err.Error()}
	}
	return nil
}

// unxz decompresses an xz stream with the host's xz (Go's standard
// library has no xz reader). Without xz the kernel boots compressed.
func unxz(ctx context.Context, r io.Reader, w io.Writer) error {
	xz, err := exec.LookPath("xz")
	if err != nil {
		return &noPVH{"xz payload and no xz program"}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// --single-stream: the payload is followed by its size, not more xz.
	cmd := exec.CommandContext(ctx, xz, "--decompress", "--stdout", "--single-stream")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return &noPVH{"run xz: " + err.Error()}
	}
	copyErr := copyBounded(w, stdout)
	if copyErr != nil {
		cancel() // a bomb, or the disk failed: stop xz
	}
	waitErr := cmd.Wait()
	if copyErr != nil {
		return copyErr
	}
	if waitErr != nil {
		return &noPVH{fmt.Sprintf("xz: %v: %s", waitErr, bytes.TrimSpace(stderr.Bytes()))}
	}
	return nil
}

// bzImagePayload returns the offset and size of a bzImage's compressed
// kernel, from its setup header (boot protocol 2.08 and later).
func bzImagePayload(r io.ReaderAt) (off, size int64, err error) {
	var hdr [0x250]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, 0, &noPVH{"not a bzImage: too short"}
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return 0, 0, &noPVH{"not a bzImage: no setup header"}
	}
	if version := binary.LittleEndian.Uint16(hdr[0x206:]); version < 0x208 {
		return 0, 0, &noPVH{fmt.Sprintf("boot protocol %#x names no payload", version)}
	}
	setupSects := int64(hdr[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off = (setupSects+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	size = int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	if size == 0 {
		return 0, 0, &noPVH{"empty payload"}
	}
	return off, size, nil
}

// xenPhys32Entry is the Xen ELF note that gives the PVH entry point
// (XEN_ELFNOTE_PHYS32_ENTRY), which QEMU looks for.
const xenPhys32Entry = 18

// checkPVHNote reports a *noPVH unless path is an x86_64 ELF file with
// a "Xen" note of type PHYS32_ENTRY.
func checkPVHNote(path string) (err error) {
	defer func() {
		// debug/elf parses the tenant's file; never let it take the
		// agent down.
		if r := recover(); r != nil {
			err = &noPVH{fmt.Sprintf("malformed ELF file: %v", r)}
		}
	}()
	f, err := elf.Open(path)
	if err != nil {
		return &noPVH{"uncompressed kernel is not an ELF file: " + err.Error()}
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return &noPVH{"uncompressed kernel is not for x86_64"}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 1<<20 {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		if hasNote(data, f.ByteOrder, "Xen", xenPhys32Entry) {
			return nil
		}
	}
	return &noPVH{"the kernel has no PVH entry (built without CONFIG_PVH)"}
}

// hasNote reports whether the ELF notes in data hold one named name of
// type typ.
func hasNote(data []byte, bo binary.ByteOrder, name string, typ uint32) bool {
	align := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(data) >= 12 {
		namesz, descsz, t := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		if uint64(namesz) > uint64(len(data)) {
			return false
		}
		n := string(bytes.TrimRight(data[:namesz], "\x00"))
		if align(namesz) > len(data) {
			return false
		}
		data = data[align(namesz):]
		if uint64(descsz) > uint64(len(data)) {
			return false
		}
		if n == name && t == typ {
			return true
		}
		if align(descsz) > len(data) {
			return false
		}
		data = data[align(descsz):]
	}
	return false
}

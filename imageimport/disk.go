package imageimport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// qcow2Magic starts every qcow2 file: "QFI\xfb".
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// sniffLen is how much of a file classify looks at: enough to see an ISO
// 9660 volume descriptor at 32 KiB.
const sniffLen = 0x8006

// otherFormat names a file format that is neither qcow2 nor a raw disk,
// found by its magic number, with what to do about it.
type otherFormat struct {
	name   string
	offset int
	magic  []byte
	hint   string
}

const convertHint = "convert it with `qemu-img convert -O qcow2 FILE disk.qcow2` and import disk.qcow2"

var otherFormats = []otherFormat{
	{"gzip-compressed", 0, gzipMagic, "decompress it (gunzip) and import the disk image inside"},
	{"xz-compressed", 0, xzMagic, "decompress it (unxz) and import the disk image inside"},
	{"zstd-compressed", 0, zstdMagic, "decompress it (unzstd) and import the disk image inside"},
	{"bzip2-compressed", 0, bzipMagic, "decompress it (bunzip2) and import the disk image inside"},
	{"a zip archive", 0, []byte("PK\x03\x04"), "unpack it and import the disk image inside"},
	{"a VMDK disk image", 0, []byte("KDMV"), convertHint},
	{"a VHDX disk image", 0, []byte("vhdxfile"), convertHint},
	{"a VHD disk image", 0, []byte("conectix"), convertHint},
	{"a VirtualBox VDI disk image", 0x40, []byte{0x7f, 0x10, 0xda, 0xbe}, convertHint},
	{"a tar archive", 257, []byte("ustar"), "import a root file system tarball without --format, or unpack the disk image inside"},
}

// isoFormat is checked only when the format is guessed from the name: an
// explicit --format raw may import an ISO image as a disk.
var isoFormat = otherFormat{"an ISO 9660 (CD-ROM) image", 0x8001, []byte("CD001"),
	"give --format raw to use it as a raw disk anyway"}

// sourceKind is what classify found a file to be.
type sourceKind int

const (
	kindContainer sourceKind = iota // leave it to the container image loaders
	kindQCOW2
	kindRaw
)

// classify decides from a file's first bytes, its name and the --format
// the user gave whether it is a qcow2 disk, a raw disk or something for
// the container loaders. A raw disk has no magic number of its own, so it
// is never guessed from content alone: it takes --format raw or a .img or
// .raw name on a file that no other format claims.
func classify(head []byte, name, format string) (sourceKind, error) {
	isQCOW2 := bytes.HasPrefix(head, qcow2Magic)
	other := func(list []otherFormat) *otherFormat {
		for i := range list {
			f := &list[i]
			if len(head) >= f.offset+len(f.magic) && bytes.Equal(head[f.offset:f.offset+len(f.magic)], f.magic) {
				return f
			}
		}
		return nil
	}
	switch format {
	case "":
	case api.FormatQCOW2:
		if !isQCOW2 {
			if f := other(otherFormats); f != nil {
				return 0, fmt.Errorf("the file is %s, not a qcow2 disk image; %s", f.name, f.hint)
			}
			return 0, errors.New("the file is not a qcow2 disk image (it does not start with QFI\\xfb); give --format raw for a raw disk image")
		}
		return kindQCOW2, nil
	case api.FormatRaw:
		if isQCOW2 {
			return 0, errors.New("the file is a qcow2 disk image, not a raw one; leave out --format or give --format qcow2")
		}
		if f := other(otherFormats); f != nil {
			return 0, fmt.Errorf("the file is %s, not a raw disk image; %s", f.name, f.hint)
		}
		return kindRaw, nil
	case api.FormatOCI:
		if isQCOW2 {
			return 0, errors.New("the file is a qcow2 disk image, not a container image; leave out --format")
		}
		return kindContainer, nil
	default:
		return 0, fmt.Errorf("--format %q is not known; use qcow2, raw or oci, or leave it out to detect the format", format)
	}
	if isQCOW2 {
		return kindQCOW2, nil
	}
	ext := strings.ToLower(path.Ext(name))
	if ext != ".img" && ext != ".raw" {
		return kindContainer, nil
	}
	if f := other(append(otherFormats[:len(otherFormats):len(otherFormats)], isoFormat)); f != nil {
		return 0, fmt.Errorf("%s is named like a raw disk image but is %s; %s", path.Base(name), f.name, f.hint)
	}
	return kindRaw, nil
}

// checkRaw accepts a raw disk image whose size is a whole number of
// 512-byte sectors; anything else is most likely cut short.
func checkRaw(size int64) error {
	switch {
	case size == 0:
		return errors.New("the raw disk image is empty")
	case size%512 != 0:
		return fmt.Errorf("the raw disk image is %d bytes, not a whole number of 512-byte sectors: it is probably truncated", size)
	}
	return nil
}

// QCOW2Info is what checkQCOW2 learnt from a qcow2 header.
type QCOW2Info struct {
	Version     uint32
	VirtualSize int64
	ClusterSize int64
}

// qcow2 incompatible feature bits (docs/interop/qcow2.txt in QEMU).
const (
	qcow2Dirty         = 1 << 0
	qcow2Corrupt       = 1 << 1
	qcow2ExternalData  = 1 << 2
	qcow2Compression   = 1 << 3
	qcow2ExtendedL2    = 1 << 4
	qcow2KnownIncompat = qcow2Dirty | qcow2Corrupt | qcow2ExternalData | qcow2Compression | qcow2ExtendedL2
)

const (
	qcow2OffsetMask = 0x00fffffffffffe00
	qcow2Compressed = 1 << 62
	// qcow2MetaBudget bounds the L2 tables checkQCOW2 reads; beyond it
	// only their places are checked, not the clusters they point to.
	qcow2MetaBudget = 256 << 20
	// qcow2MaxL1 is QEMU's own bound on the L1 table (32 MiB).
	qcow2MaxL1 = 32 << 20 / 8
)

// checkQCOW2 reads the header and the cluster tables of a qcow2 file of
// size bytes and refuses one that QEMU could not use as a base image here:
// a truncated or corrupt file (every table and data cluster the header
// leads to must lie inside the file), an encrypted one, one with a backing
// file or an external data file, or one marked dirty or corrupt.
func checkQCOW2(r io.ReaderAt, size int64) (QCOW2Info, error) {
	var info QCOW2Info
	h := make([]byte, 104)
	n, err := r.ReadAt(h, 0)
	if n < 72 {
		if err == nil || errors.Is(err, io.EOF) {
			return info, fmt.Errorf("the qcow2 file is truncated: %d bytes, shorter than its header", size)
		}
		return info, fmt.Errorf("read qcow2 header: %w", err)
	}
	be := binary.BigEndian
	if !bytes.Equal(h[:4], qcow2Magic) {
		return info, errors.New("not a qcow2 file")
	}
	info.Version = be.Uint32(h[4:])
	backingOffset := be.Uint64(h[8:])
	clusterBits := be.Uint32(h[20:])
	virtual := be.Uint64(h[24:])
	crypt := be.Uint32(h[32:])
	l1Size := be.Uint32(h[36:])
	l1Offset := be.Uint64(h[40:])
	refOffset := be.Uint64(h[48:])
	refClusters := be.Uint32(h[56:])
	nSnapshots := be.Uint32(h[60:])
	snapOffset := be.Uint64(h[64:])
	var incompat uint64
	switch info.Version {
	case 2:
	case 3:
		if n < 104 {
			return info, fmt.Errorf("the qcow2 file is truncated: %d bytes, shorter than its header", size)
		}
		incompat = be.Uint64(h[72:])
		if order := be.Uint32(h[96:]); order > 6 {
			return info, fmt.Errorf("qcow2 header: refcount order %d is not valid", order)
		}
		if hl := be.Uint32(h[100:]); hl < 104 || hl%8 != 0 || int64(hl) > 1<<int64(min(be.Uint32(h[20:]), 21)) {
			return info, fmt.Errorf("qcow2 header: header length %d is not valid", hl)
		}
	default:
		return info, fmt.Errorf("qcow2 version %d is not supported (want 2 or 3); %s", info.Version, convertHint)
	}
	if clusterBits < 9 || clusterBits > 21 {
		return info, fmt.Errorf("qcow2 header: cluster bits %d is not valid (9 to 21)", clusterBits)
	}
	cluster := int64(1) << clusterBits
	info.ClusterSize = cluster
	switch {
	case virtual == 0:
		return info, errors.New("the qcow2 disk has a virtual size of 0 bytes")
	case virtual > 1<<56:
		return info, fmt.Errorf("qcow2 header: virtual size %d is not valid", virtual)
	case crypt != 0:
		return info, errors.New("the qcow2 image is encrypted; decrypt it with `qemu-img convert -O qcow2` (with its --object secret) and import the result")
	case backingOffset != 0:
		return info, errors.New("the qcow2 image has a backing file; flatten it with `qemu-img convert -O qcow2 FILE flat.qcow2` and import flat.qcow2")
	case incompat&qcow2Dirty != 0:
		return info, errors.New("the qcow2 image was not closed cleanly (dirty bit set); repair it with `qemu-img check -r all FILE`")
	case incompat&qcow2Corrupt != 0:
		return info, errors.New("the qcow2 image is marked corrupt; repair it with `qemu-img check -r all FILE`")
	case incompat&qcow2ExternalData != 0:
		return info, errors.New("the qcow2 image keeps its data in an external file; " + convertHint)
	case incompat&^qcow2KnownIncompat != 0:
		return info, fmt.Errorf("the qcow2 image uses features this importer does not know (incompatible bits %#x); %s", incompat&^qcow2KnownIncompat, convertHint)
	}
	info.VirtualSize = int64(virtual)
	entrySize := int64(8)
	if incompat&qcow2ExtendedL2 != 0 {
		entrySize = 16
	}
	perL2 := cluster / entrySize
	need := (int64(virtual) + cluster*perL2 - 1) / (cluster * perL2)
	if int64(l1Size) < need || l1Size > qcow2MaxL1 {
		return info, fmt.Errorf("qcow2 header: L1 table of %d entries does not fit a %d-byte disk", l1Size, virtual)
	}
	inside := func(what string, off uint64, length int64) error {
		if off%uint64(cluster) != 0 {
			return fmt.Errorf("qcow2 %s at offset %d is not cluster-aligned: the file is corrupt", what, off)
		}
		if off > uint64(size) || int64(off)+length > size {
			return fmt.Errorf("the qcow2 file is truncated: its %s reaches byte %d but the file has %d bytes", what, int64(off)+length, size)
		}
		return nil
	}
	if refClusters == 0 {
		return info, errors.New("qcow2 header: no refcount table")
	}
	if err := inside("refcount table", refOffset, int64(refClusters)*cluster); err != nil {
		return info, err
	}
	if err := inside("L1 table", l1Offset, int64(l1Size)*8); err != nil {
		return info, err
	}
	if nSnapshots > 0 {
		if err := inside("snapshot table", snapOffset, 1); err != nil {
			return info, err
		}
	}
	// Refcount blocks.
	if err := qcow2Entries(r, refOffset, int64(refClusters)*cluster, 8, func(_ int64, e uint64) error {
		if e == 0 {
			return nil
		}
		return inside("refcount block", e&qcow2OffsetMask, cluster)
	}); err != nil {
		return info, err
	}
	// L2 tables and, within the budget, the data clusters they map.
	budget := int64(qcow2MetaBudget)
	compressedBits := 62 - (clusterBits - 8)
	return info, qcow2Entries(r, l1Offset, int64(l1Size)*8, 8, func(_ int64, e uint64) error {
		l2 := e & qcow2OffsetMask
		if l2 == 0 {
			return nil
		}
		if err := inside("L2 table", l2, cluster); err != nil {
			return err
		}
		if budget -= cluster; budget < 0 {
			return nil
		}
		return qcow2Entries(r, l2, cluster, entrySize, func(_ int64, d uint64) error {
			if d&qcow2Compressed != 0 {
				off := d & (1<<compressedBits - 1)
				if int64(off) >= size {
					return fmt.Errorf("the qcow2 file is truncated: a compressed cluster starts at byte %d but the file has %d bytes", off, size)
				}
				return nil
			}
			// A data cluster only has to start inside the file: QEMU
			// may leave the last one (or subcluster) short.
			if off := d & qcow2OffsetMask; off != 0 {
				return inside("data cluster", off, 1)
			}
			return nil
		})
	})
}

// qcow2Entries calls fn with each big-endian 64-bit entry of a table of
// length bytes at off, reading it in pieces. Entries are entrySize apart
// (16 for extended L2 entries, whose first 8 bytes are the descriptor).
func qcow2Entries(r io.ReaderAt, off uint64, length, entrySize int64, fn func(i int64, e uint64) error) error {
	buf := make([]byte, min(length, 1<<20))
	for done := int64(0); done < length; {
		chunk := buf[:min(int64(len(buf)), length-done)]
		if _, err := r.ReadAt(chunk, int64(off)+done); err != nil {
			return fmt.Errorf("read qcow2 table at %d: %w", int64(off)+done, err)
		}
		for i := int64(0); i+8 <= int64(len(chunk)); i += entrySize {
			if err := fn((done+i)/entrySize, binary.BigEndian.Uint64(chunk[i:])); err != nil {
				return err
			}
		}
		done += int64(len(chunk))
	}
	return nil
}

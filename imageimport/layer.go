package imageimport

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// MaxLayerSize is the largest layer the API server accepts as a blob.
const MaxLayerSize = 8 << 30

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	bzipMagic = []byte{'B', 'Z', 'h'}
)

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// checkDigest accepts only "sha256:<64 lower-case hex>", the form the API
// stores blobs under.
func checkDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("digest %q is not supported: want sha256:<64 hex digits>", truncate(d, 80))
	}
	return nil
}

// workspace is the part of workDir one Load owns: it remembers every file
// it made so a failure removes them all.
type workspace struct {
	dir     string
	created []string
}

// tempFile makes a new partial file in the workspace.
func (ws *workspace) tempFile(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(ws.dir, ".partial-"+prefix+"-*")
	if err != nil {
		return nil, fmt.Errorf("create file in work directory: %w", err)
	}
	ws.created = append(ws.created, f.Name())
	return f, nil
}

// commit renames a finished temporary file to its final name. A file that
// was already there (an earlier import of the same layer) is replaced but
// not counted as made by this Load, so a failure leaves it alone.
func (ws *workspace) commit(tmp, final string) error {
	_, statErr := os.Lstat(final)
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("store %s: %w", filepath.Base(final), err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		ws.created = append(ws.created, final)
	}
	return nil
}

// cleanup removes every file the workspace made.
func (ws *workspace) cleanup() {
	for _, p := range ws.created {
		// Best effort: the caller already holds the error that matters.
		_ = os.Remove(p)
	}
	ws.created = nil
}

// layerWant is what a source declares about a layer.
type layerWant struct {
	// Digest of the stored (possibly compressed) bytes; "" when the source
	// declares none (docker save, rootfs tarballs).
	Digest string
	// Size in bytes; -1 when unknown.
	Size int64
	// DiffID is the digest of the uncompressed tar from the image config;
	// "" when unknown.
	DiffID string
	// MediaType as declared; used only to refuse what the API cannot take.
	MediaType string
}

// name says how errors refer to the layer.
func (w layerWant) name(index int) string {
	if w.Digest != "" {
		return "layer " + w.Digest
	}
	return fmt.Sprintf("layer %d", index+1)
}

// layerResult is a verified layer file.
type layerResult struct {
	Blob
	// Arch is the architecture of the first executable found in bin
	// directories, when asked for; "" if none was found.
	Arch string
}

// copyLayer copies a layer from r into the workspace while hashing it, and
// walks its (decompressed) tar stream to the end. It checks the bytes
// against want and returns the stored file. index numbers the layer in
// errors when no digest is declared.
func (ws *workspace) copyLayer(ctx context.Context, r io.Reader, want layerWant, index int, sniffArch bool) (layerResult, error) {
	label := want.name(index)
	if err := refuseMediaType(want.MediaType); err != nil {
		return layerResult{}, fmt.Errorf("%s: %w", label, err)
	}
	if want.Size > MaxLayerSize {
		return layerResult{}, fmt.Errorf("%s is %d bytes; the server accepts blobs up to %d bytes", label, want.Size, int64(MaxLayerSize))
	}
	f, err := ws.tempFile("layer")
	if err != nil {
		return layerResult{}, err
	}
	defer f.Close()

	sum := sha256.New()
	var n countWriter
	raw := bufio.NewReaderSize(io.TeeReader(&ctxReader{ctx: ctx, r: r}, io.MultiWriter(f, sum, &n)), 64<<10)
	mediaType, arch, walkErr := walkLayer(raw, want.DiffID, sniffArch)
	// Hash to the very end whatever the walk found, so a corrupt layer is
	// reported by its digest rather than by where the tar broke.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		if ctx.Err() != nil {
			return layerResult{}, ctx.Err()
		}
		return layerResult{}, fmt.Errorf("read %s: %w", label, err)
	}
	if ctx.Err() != nil {
		return layerResult{}, ctx.Err()
	}
	got := "sha256:" + hex.EncodeToString(sum.Sum(nil))
	switch {
	case want.Size >= 0 && int64(n) != want.Size:
		return layerResult{}, fmt.Errorf("%s is truncated or corrupt: it has %d bytes, the manifest says %d", label, int64(n), want.Size)
	case want.Digest != "" && got != want.Digest:
		return layerResult{}, fmt.Errorf("%s is corrupt: the manifest says %s but its content hashes to %s", label, want.Digest, got)
	case int64(n) > MaxLayerSize:
		return layerResult{}, fmt.Errorf("%s is %d bytes; the server accepts blobs up to %d bytes", label, int64(n), int64(MaxLayerSize))
	}
	if walkErr != nil {
		if want.Digest == "" {
			label = "layer " + got
		}
		return layerResult{}, fmt.Errorf("%s is truncated or corrupt: %w", label, walkErr)
	}
	if err := f.Close(); err != nil {
		return layerResult{}, fmt.Errorf("write %s: %w", label, err)
	}
	final := filepath.Join(ws.dir, strings.Replace(got, ":", "-", 1))
	if err := ws.commit(f.Name(), final); err != nil {
		return layerResult{}, err
	}
	return layerResult{
		Blob: Blob{Blob: api.Blob{Digest: got, Size: int64(n), MediaType: mediaType}, Path: final},
		Arch: arch,
	}, nil
}

// refuseMediaType rejects declared layer types the API cannot store.
func refuseMediaType(mt string) error {
	switch {
	case strings.Contains(mt, "zstd"):
		return fmt.Errorf("media type %s: zstd-compressed layers are not supported; re-export the image with gzip layers", mt)
	case strings.Contains(mt, "encrypted"):
		return fmt.Errorf("media type %s: encrypted layers are not supported", mt)
	case strings.Contains(mt, "foreign") || strings.Contains(mt, "nondistributable"):
		return fmt.Errorf("media type %s: foreign (Windows) layers are not supported", mt)
	}
	return nil
}

// walkLayer sniffs the compression of raw, reads the tar stream inside it
// to the end and checks the uncompressed digest against diffID when given.
// It returns the media type to store the layer under, the first problem
// found (nil if none) and, if sniffArch, the architecture of the first
// executable in a bin directory.
func walkLayer(raw *bufio.Reader, diffID string, sniffArch bool) (mediaType, arch string, err error) {
	head, _ := raw.Peek(6)
	var stream io.Reader = raw
	mediaType = api.MediaTypeLayerTar
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		mediaType = api.MediaTypeLayerGzip
		gz, err := gzip.NewReader(raw)
		if err != nil {
			return mediaType, "", fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		stream = gz
	case bytes.HasPrefix(head, zstdMagic):
		return "", "", errors.New("it is zstd-compressed; only plain and gzip-compressed tar layers are supported")
	case bytes.HasPrefix(head, xzMagic), bytes.HasPrefix(head, bzipMagic):
		return "", "", errors.New("it is xz- or bzip2-compressed; only plain and gzip-compressed tar layers are supported")
	}
	diff := sha256.New()
	var zt zeroTail
	tarIn := io.TeeReader(stream, io.MultiWriter(diff, &zt))
	arch, err = walkTar(tarIn, sniffArch)
	if err != nil {
		return mediaType, "", err
	}
	if !zt.ended() {
		return mediaType, "", errors.New("the tar stream ends without an end-of-archive marker")
	}
	// Read what follows the archive (padding) so gzip checks its CRC.
	if _, err := io.Copy(io.Discard, tarIn); err != nil {
		return mediaType, "", err
	}
	if diffID != "" {
		if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != diffID {
			return mediaType, "", fmt.Errorf("its uncompressed content hashes to %s, the image config says %s", got, diffID)
		}
	}
	return mediaType, arch, nil
}

// walkTar reads every entry of a tar stream.
func walkTar(r io.Reader, sniffArch bool) (arch string, err error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return arch, nil
		}
		if err != nil {
			return "", err
		}
		if sniffArch && arch == "" && hdr.Typeflag == tar.TypeReg && hdr.Size >= 20 && inBinDir(hdr.Name) {
			var buf [20]byte
			if _, err := io.ReadFull(tr, buf[:]); err != nil {
				return "", fmt.Errorf("%s: %w", hdr.Name, err)
			}
			arch = elfArch(buf[:])
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return "", fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// inBinDir reports whether a tar entry lies directly in a bin directory.
func inBinDir(name string) bool {
	dir := path.Dir(strings.TrimPrefix(path.Clean("/"+name), "/"))
	switch dir {
	case "bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin":
		return true
	}
	return false
}

// elfArch returns the Go architecture name of an ELF executable from the
// first 20 bytes of its header, or "".
func elfArch(h []byte) string {
	if len(h) < 20 || !bytes.HasPrefix(h, []byte(elf.ELFMAG)) {
		return ""
	}
	var order binary.ByteOrder = binary.LittleEndian
	if elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	typ := elf.Type(order.Uint16(h[16:]))
	if typ != elf.ET_EXEC && typ != elf.ET_DYN {
		return ""
	}
	return goArch(elf.Machine(order.Uint16(h[18:])), elf.Class(h[elf.EI_CLASS]), order)
}

// goArch names an ELF machine the way Go (and OCI) do.
func goArch(m elf.Machine, class elf.Class, order binary.ByteOrder) string {
	is64 := class == elf.ELFCLASS64
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_386:
		return "386"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		if is64 {
			return "riscv64"
		}
	case elf.EM_PPC64:
		if order == binary.BigEndian {
			return "ppc64"
		}
		return "ppc64le"
	case elf.EM_S390:
		if is64 {
			return "s390x"
		}
	case elf.EM_LOONGARCH:
		if is64 {
			return "loong64"
		}
	case elf.EM_MIPS:
		if is64 {
			if order == binary.BigEndian {
				return "mips64"
			}
			return "mips64le"
		}
		if order == binary.BigEndian {
			return "mips"
		}
		return "mipsle"
	}
	return ""
}

// zeroTail remembers how many zero bytes ended the data written to it, to
// tell a tar stream with its end-of-archive marker from one cut off at an
// entry boundary.
type zeroTail struct{ n int64 }

func (z *zeroTail) Write(p []byte) (int, error) {
	i := len(p)
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		z.n += int64(len(p))
	} else {
		z.n = int64(len(p) - i)
	}
	return len(p), nil
}

// ended reports whether at least one zero block closed the stream. The
// standard asks for two; one is accepted like GNU tar does.
func (z *zeroTail) ended() bool { return z.n >= 512 }

// countWriter counts bytes written.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package imageimport

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// qemuImg runs qemu-img with args, failing the test on error.
//
// Making a LUKS-encrypted image, qemu-img times its key derivation by the
// thread's CPU time, and gives up ("Unable to get accurate CPU usage")
// when that clock did not move during its probe, which a busy machine
// can make happen; that alone is tried again, a few times.
func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	bin := testenv.NeedBinary(t, "qemu-img")
	for attempt := 1; ; attempt++ {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			return
		}
		if attempt < 5 && strings.Contains(string(out), "Unable to get accurate CPU usage") {
			continue
		}
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// rawWithData makes a 16 MiB raw disk with 3 MB of random bytes at its
// start and the rest a hole.
func rawWithData(t *testing.T, dir string) string {
	t.Helper()
	data := make([]byte, 3_000_000)
	rand.Read(data)
	p := filepath.Join(dir, "data.raw")
	writeFile(t, p, data)
	if err := os.Truncate(p, 16<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkQCOW2File(t *testing.T, path string) (QCOW2Info, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return checkQCOW2(f, fi.Size())
}

func TestCheckQCOW2AcceptsWhatQemuImgWrites(t *testing.T) {
	dir := t.TempDir()
	raw := rawWithData(t, dir)
	tests := []struct {
		name    string
		args    []string
		version uint32
		cluster int64
	}{
		{"empty", []string{"create", "-q", "-f", "qcow2", "OUT", "1G"}, 3, 65536},
		{"data", []string{"convert", "-f", "raw", "-O", "qcow2", raw, "OUT"}, 3, 65536},
		{"compressed", []string{"convert", "-c", "-f", "raw", "-O", "qcow2", raw, "OUT"}, 3, 65536},
		{"version 2", []string{"convert", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", raw, "OUT"}, 2, 65536},
		{"extended L2", []string{"convert", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on", raw, "OUT"}, 3, 65536},
		{"small clusters", []string{"convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", raw, "OUT"}, 3, 512},
		{"big clusters", []string{"convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=2M", raw, "OUT"}, 3, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".qcow2")
			args := append([]string(nil), tt.args...)
			for i := range args {
				if args[i] == "OUT" {
					args[i] = out
				}
			}
			qemuImg(t, args...)
			info, err := checkQCOW2File(t, out)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			want := int64(16 << 20)
			if tt.name == "empty" {
				want = 1 << 30
			}
			if info.Version != tt.version || info.ClusterSize != tt.cluster || info.VirtualSize != want {
				t.Errorf("info %+v, want version %d, cluster %d, size %d", info, tt.version, tt.cluster, want)
			}
		})
	}
}

func TestCheckQCOW2RefusesTruncatedAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	raw := rawWithData(t, dir)
	good := filepath.Join(dir, "good.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", raw, good)
	compressed := filepath.Join(dir, "compressed.qcow2")
	qemuImg(t, "convert", "-c", "-f", "raw", "-O", "qcow2", raw, compressed)
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", good, backed)
	encrypted := filepath.Join(dir, "encrypted.qcow2")
	qemuImg(t, "create", "-q", "--object", "secret,id=s0,data=password", "-f", "qcow2",
		"-o", "encrypt.format=luks,encrypt.key-secret=s0", encrypted, "16M")
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	compBytes, err := os.ReadFile(compressed)
	if err != nil {
		t.Fatal(err)
	}
	// patched returns a copy of b with v written big-endian at off.
	patched := func(b []byte, off int, v any) []byte {
		c := bytes.Clone(b)
		var buf bytes.Buffer
		binary.Write(&buf, binary.BigEndian, v)
		copy(c[off:], buf.Bytes())
		return c
	}
	tests := []struct {
		name string
		data []byte
		file string
		want string
	}{
		{"cut in half", goodBytes[:len(goodBytes)/2], "", "truncated"},
		{"last cluster missing", goodBytes[:len(goodBytes)-65536], "", "truncated"},
		{"compressed cut", compBytes[:len(compBytes)/2], "", "truncated"},
		{"only the header", goodBytes[:4096], "", "truncated"},
		{"shorter than the header", goodBytes[:50], "", "truncated"},
		{"version 4", patched(goodBytes, 4, uint32(4)), "", "version 4"},
		{"cluster bits", patched(goodBytes, 20, uint32(30)), "", "cluster bits"},
		{"zero size", patched(goodBytes, 24, uint64(0)), "", "virtual size of 0"},
		{"L1 too small", patched(goodBytes, 36, uint32(0)), "", "L1 table"},
		{"L1 beyond the end", patched(goodBytes, 40, uint64(1<<40)), "", "truncated"},
		{"L1 unaligned", patched(goodBytes, 40, uint64(65536+8)), "", "cluster-aligned"},
		{"refcount table beyond the end", patched(goodBytes, 48, uint64(1<<40)), "", "truncated"},
		{"dirty", patched(goodBytes, 72, uint64(qcow2Dirty)), "", "dirty"},
		{"corrupt bit", patched(goodBytes, 72, uint64(qcow2Corrupt)), "", "corrupt"},
		{"unknown feature", patched(goodBytes, 72, uint64(1<<40)), "", "features"},
		{"backing file", nil, backed, "backing file"},
		{"encrypted", nil, encrypted, "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.file
			if p == "" {
				p = filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".qcow2")
				writeFile(t, p, tt.data)
			}
			_, err := checkQCOW2File(t, p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	qcow := append(append([]byte(nil), qcow2Magic...), make([]byte, 100)...)
	zeros := make([]byte, sniffLen)
	iso := bytes.Clone(zeros)
	copy(iso[0x8001:], "CD001")
	tarHead := bytes.Clone(zeros)
	copy(tarHead[257:], "ustar")
	tests := []struct {
		name, file, format string
		head               []byte
		want               sourceKind
		wantErr            string
	}{
		{"qcow2 by magic", "disk", "", qcow, kindQCOW2, ""},
		{"qcow2 named .img", "disk.img", "", qcow, kindQCOW2, ""},
		{"qcow2 asked", "x", api.FormatQCOW2, qcow, kindQCOW2, ""},
		{"raw by name", "disk.img", "", zeros, kindRaw, ""},
		{"raw by .raw", "DISK.RAW", "", zeros, kindRaw, ""},
		{"raw asked", "disk", api.FormatRaw, zeros, kindRaw, ""},
		{"raw asked for an ISO", "cd.iso", api.FormatRaw, iso, kindRaw, ""},
		{"unknown content", "disk", "", zeros, kindContainer, ""},
		{"tarball", "rootfs.tar", "", tarHead, kindContainer, ""},
		{"oci asked", "x.img", api.FormatOCI, zeros, kindContainer, ""},
		{"gzip named .img", "disk.img", "", append(bytes.Clone(gzipMagic), 0, 0), 0, "gzip-compressed"},
		{"xz named .raw", "disk.raw", "", append(bytes.Clone(xzMagic), 0), 0, "unxz"},
		{"vmdk named .img", "disk.img", "", []byte("KDMV\x01\x00\x00\x00"), 0, "qemu-img convert"},
		{"ISO named .img", "cd.img", "", iso, 0, "ISO 9660"},
		{"tar named .img", "x.img", "", tarHead, 0, "tar archive"},
		{"qcow2 asked, raw given", "x", api.FormatQCOW2, zeros, 0, "not a qcow2"},
		{"raw asked, qcow2 given", "x", api.FormatRaw, qcow, 0, "is a qcow2"},
		{"raw asked, gzip given", "x", api.FormatRaw, gzipMagic, 0, "gzip"},
		{"oci asked, qcow2 given", "x", api.FormatOCI, qcow, 0, "qcow2"},
		{"unknown format", "x", "vmdk", zeros, 0, "not known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := classify(tt.head, tt.file, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("classify = %v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("classify = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestCheckRaw(t *testing.T) {
	for _, tt := range []struct {
		size int64
		ok   bool
	}{{0, false}, {511, false}, {512, true}, {1 << 30, true}, {1<<30 + 1, false}} {
		if err := checkRaw(tt.size); (err == nil) != tt.ok {
			t.Errorf("checkRaw(%d) = %v, want ok %v", tt.size, err, tt.ok)
		}
	}
}

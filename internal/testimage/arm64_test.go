package testimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestMirrorFromSources(t *testing.T) {
	tests := []struct {
		name, deb822, list, want string
	}{
		{
			name: "deb822 after the security stanza",
			deb822: `Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
# a comment
URIs: https://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main
`,
			want: "https://mirror.example.org/debian",
		},
		{
			name: "deb822 disabled and source-only stanzas skipped",
			deb822: `Enabled: no
Types: deb
URIs: http://off.example.org/debian
Suites: bookworm

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm

Types: deb
URIs:
 http://on.example.org/debian
Suites: bookworm
`,
			want: "http://on.example.org/debian",
		},
		{
			name: "one-line sources with options",
			list: `# deb http://old.example.org/debian bookworm main
deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example.org/debian bookworm main
`,
			want: "http://deb.example.org/debian",
		},
		{
			name: "only updates and security: nothing",
			list: "deb http://deb.example.org/debian bookworm-updates main\ndeb http://deb.example.org/debian-security bookworm-security main\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mirrorFromDeb822(tc.deb822)
			if tc.list != "" {
				got = mirrorFromList(tc.list)
			}
			if got != tc.want {
				t.Errorf("mirror = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAptMirrorDefault(t *testing.T) {
	dir := t.TempDir()
	old822, oldList := aptSourcesDeb822, aptSourcesList
	t.Cleanup(func() { aptSourcesDeb822, aptSourcesList = old822, oldList })
	aptSourcesDeb822, aptSourcesList = filepath.Join(dir, "none.sources"), filepath.Join(dir, "none.list")
	if got := aptMirror(); got != aptDefaultMirror {
		t.Errorf("without sources: %q, want %q", got, aptDefaultMirror)
	}
	os.WriteFile(aptSourcesList, []byte("deb http://list.example.org/debian bookworm main\n"), 0o644)
	if got := aptMirror(); got != "http://list.example.org/debian" {
		t.Errorf("from sources.list: %q", got)
	}
}

func TestReleaseEntry(t *testing.T) {
	release := []byte(`Origin: Debian
Codename: bookworm
MD5Sum:
 e0f09148d8af4e8836adf64b3679d893  8689464 main/binary-arm64/Packages.xz
SHA256:
 c7c883a61f348283050d3a754e7c8119117c4019bf65da804c78fdae315866f1 49434864 main/binary-arm64/Packages
 2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00  8689464 main/binary-arm64/Packages.xz
 2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c0  8689464 main/binary-armhf/Packages.xz
`)
	sum, size, err := releaseEntry(release, "main/binary-arm64/Packages.xz")
	if err != nil || sum != "2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00" || size != 8689464 {
		t.Errorf("entry = %s %d %v", sum, size, err)
	}
	if _, _, err := releaseEntry(release, "main/binary-armhf/Packages.xz"); err == nil {
		t.Error("a short SHA-256 was accepted")
	}
	if _, _, err := releaseEntry(release, "contrib/binary-arm64/Packages.xz"); err == nil {
		t.Error("a missing entry was found")
	}
	if got := releaseField(release, "Codename"); got != "bookworm" {
		t.Errorf("Codename = %q", got)
	}
}

// stanza returns a Packages stanza for name and version.
func stanza(name, version string) string {
	sum := sha256.Sum256([]byte(name + version))
	return "Package: " + name + "\nVersion: " + version + "\nDescription: a package\n more text: here\n" +
		"Filename: pool/main/x/" + name + "_" + version + "_arm64.deb\nSize: 1234\nSHA256: " + hex.EncodeToString(sum[:]) + "\n\n"
}

func TestParseAndPickArm64(t *testing.T) {
	var idx strings.Builder
	for _, s := range []struct{ name, version string }{
		{"busybox", "1:1.35.0-4"},
		{"busybox-static", "1:1.35.0-4+deb12u1+b1"},
		{"linux-image-6.1.0-50-arm64-unsigned", "6.1.176-1"},
		{"linux-image-6.1.0-50-arm64", "6.1.176-1"},
		{"linux-image-6.1.0-47-arm64", "6.1.170-1"},
		{"linux-image-6.1.0-51-cloud-arm64", "6.1.180-1"},
		{"linux-image-6.1.0-51-rt-arm64", "6.1.180-1"},
		{"linux-image-6.1.0-51-arm64-dbg", "6.1.180-1"},
		{"linux-image-arm64", "6.1.176-1"},
	} {
		idx.WriteString(stanza(s.name, s.version))
	}
	keep := func(n string) bool { return n == arm64Busybox || arm64Kernel.MatchString(n) }
	pkgs, err := parsePackages(strings.NewReader(idx.String()), keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 4 {
		t.Errorf("kept %d packages, want busybox-static and the three generic kernels: %+v", len(pkgs), pkgs)
	}
	k, b, err := pickArm64(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "linux-image-6.1.0-50-arm64" || k.Size != 1234 || kernelRelease(k.Name) != "6.1.0-50-arm64" {
		t.Errorf("kernel %+v, want the signed 6.1.0-50", k)
	}
	if b.Name != "busybox-static" || b.Filename != "pool/main/x/busybox-static_1:1.35.0-4+deb12u1+b1_arm64.deb" {
		t.Errorf("busybox %+v", b)
	}
	if _, _, err := pickArm64(pkgs[:1]); !errors.Is(err, errNoPackage) {
		t.Errorf("without a kernel: %v", err)
	}

	for name, bad := range map[string]string{
		"path out of the pool": strings.Replace(stanza("busybox-static", "1"), "pool/main/x/", "pool/../../etc/", 1),
		"no SHA256":            strings.Replace(stanza("busybox-static", "1"), "SHA256:", "MD5sum:", 1),
		"bad size":             strings.Replace(stanza("busybox-static", "1"), "Size: 1234", "Size: lots", 1),
	} {
		if _, err := parsePackages(strings.NewReader(bad), keep); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFetchVerified(t *testing.T) {
	content := bytes.Repeat([]byte("arm64 "), 1000)
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/short":
			w.Write(content[:len(content)/2])
		case "/missing":
			http.NotFound(w, r)
		default:
			w.Write(content)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	tests := []struct {
		name, path, sum string
		size            int64
		wantErr         string
	}{
		{"truncated", "/short", good, int64(len(content)), "bytes"},
		{"wrong sum", "/file", strings.Repeat("0", 64), int64(len(content)), "SHA-256"},
		{"longer than the index says", "/file", good, int64(len(content) - 1), "bytes"},
		{"not found", "/missing", good, int64(len(content)), "404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "x.deb")
			err := fetchVerified(ctx, srv.URL+tc.path, dst, tc.sum, tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a failed download left %v", ents)
			}
		})
	}

	dst := filepath.Join(t.TempDir(), "x.deb")
	if err := fetchVerified(ctx, srv.URL+"/file", dst, good, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Fatal("the file differs from what was served")
	}
	before := hits.Load()
	if err := fetchVerified(ctx, srv.URL+"/file", dst, good, int64(len(content))); err != nil || hits.Load() != before {
		t.Errorf("a cached file was fetched again (%v)", err)
	}
	// A damaged cached file is replaced.
	os.WriteFile(dst, []byte("damaged"), 0o644)
	if err := fetchVerified(ctx, srv.URL+"/file", dst, good, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Error("a damaged cached file was kept")
	}
}

// TestTinyArm64Image builds (or finds) the aarch64 image and checks what
// it is made of: an arm64 kernel Image, an aarch64 busybox, the modules
// and the init; and that an altered index signature is refused.
func TestTinyArm64Image(t *testing.T) {
	if testing.Short() {
		t.Skip("may download about 60 MB from the Debian mirror")
	}
	kernel, initrd := TinyArm64(t)
	k, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	// The arm64 Image header has the magic "ARM\x64" at offset 0x38.
	if len(k) < 0x40 || string(k[0x38:0x3c]) != "ARM\x64" {
		t.Errorf("%s is not an arm64 kernel Image", kernel)
	}
	data, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	ents := parseNewc(t, data)
	if ents["init"].data != initScript {
		t.Error("the init is not the tiny image's")
	}
	bb, err := elf.NewFile(bytes.NewReader([]byte(ents["bin/busybox"].data)))
	if err != nil {
		t.Fatalf("bin/busybox: %v", err)
	}
	if bb.Machine != elf.EM_AARCH64 {
		t.Errorf("bin/busybox is for %v, want aarch64", bb.Machine)
	}
	order := strings.Fields(ents["lib/modules/order"].data)
	for _, m := range Arm64Modules {
		if !strings.Contains(" "+strings.Join(order, " ")+" ", " "+m+" ") {
			t.Errorf("module %s not loaded by the init (order %v)", m, order)
		}
		ko, err := elf.NewFile(bytes.NewReader([]byte(ents["lib/modules/"+m+".ko"].data)))
		if err != nil || ko.Machine != elf.EM_AARCH64 {
			t.Errorf("lib/modules/%s.ko is not an aarch64 module: %v", m, err)
		}
	}

	// The index of the run above is kept; altering its signed text must
	// make gpgv refuse it.
	signed := filepath.Join(DebianCacheDir(), "debian-index", "InRelease-"+arm64Suite)
	orig, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyInRelease(context.Background(), signed); err != nil {
		t.Fatalf("the kept InRelease: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "InRelease")
	os.WriteFile(bad, bytes.Replace(orig, []byte("Codename: "+arm64Suite), []byte("Codename: sid"), 1), 0o644)
	if _, err := verifyInRelease(context.Background(), bad); err == nil {
		t.Error("an altered InRelease verified")
	}

	// Without the mirror, the verified index of the run above still
	// finds the image.
	old822, oldList := aptSourcesDeb822, aptSourcesList
	t.Cleanup(func() { aptSourcesDeb822, aptSourcesList = old822, oldList })
	aptSourcesDeb822 = filepath.Join(t.TempDir(), "debian.sources")
	os.WriteFile(aptSourcesDeb822, []byte("Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: "+arm64Suite+"\n"), 0o644)
	var logged strings.Builder
	img, built, err := BuildArm64(context.Background(), DebianCacheDir(), func(format string, args ...any) {
		fmt.Fprintf(&logged, format+"\n", args...)
	})
	if err != nil || built || img.Kernel != kernel {
		t.Errorf("offline: %+v built=%v %v, want the cached %s", img, built, err, kernel)
	}
	if !strings.Contains(logged.String(), "unreachable") {
		t.Errorf("offline: nothing said about the mirror: %q", logged.String())
	}
}

// TestTinyArm64Disk checks the disk image's FAT file system holds the
// image's kernel and initramfs and the startup script, byte for byte.
func TestTinyArm64Disk(t *testing.T) {
	if testing.Short() {
		t.Skip("may download about 60 MB from the Debian mirror")
	}
	img := tinyArm64(t)
	disk := TinyArm64Disk(t)
	for name, want := range map[string]string{"vmlinuz": img.Kernel, "initrd.cpio": img.Initrd, "startup.nsh": ""} {
		out, err := exec.Command("mtype", "-i", disk, "::"+name).Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", name, err)
		}
		wantData := []byte(arm64Startup)
		if want != "" {
			if wantData, err = os.ReadFile(want); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out, wantData) {
			t.Errorf("%s on the disk differs (%d bytes, want %d)", name, len(out), len(wantData))
		}
	}
}

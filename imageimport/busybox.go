package imageimport

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// busyboxTime is the modification time of every file in the busybox
// layer, so the layer's digest depends only on the busybox binary.
var busyboxTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// appletRE matches the applet names Busybox accepts as plain words.
var appletRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// Files of the busybox image besides the binary and its applets.
const (
	busyboxPasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	busyboxGroup  = "root:x:0:\nnobody:x:65534:\n"
	busyboxHosts  = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	busyboxResolv = "# Replaced by the runtime when the instance starts.\n"
)

// Busybox builds the starter image from a static busybox binary (Debian's
// busybox-static installs one at /bin/busybox), for machines without
// access to a registry. The image has one gzip layer holding bin/busybox,
// a bin/<applet> symlink for every applet the binary lists, a minimal /etc
// and the usual empty directories; it runs /bin/sh. The layer is built
// deterministically: the same binary always gives the same digest.
//
// The layer file is written to workDir; on failure nothing is left there.
func Busybox(busyboxPath, workDir string) (*Image, error) {
	arch, err := checkStatic(busyboxPath)
	if err != nil {
		return nil, err
	}
	if err := checkArch(arch); err != nil {
		return nil, fmt.Errorf("%s: %w", busyboxPath, err)
	}
	applets, version, err := listApplets(busyboxPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	ws := &workspace{dir: workDir}
	blob, err := writeBusyboxLayer(ws, busyboxPath, applets)
	if err != nil {
		ws.cleanup()
		return nil, err
	}
	source := "busybox " + busyboxPath
	if version != "" {
		source += " (" + version + ")"
	}
	return &Image{Layers: []Blob{blob}, Config: DefaultConfig(), Architecture: arch, Source: source}, nil
}

// checkStatic makes sure path is an ELF executable without a program
// interpreter, so it runs in an image that has no libc, and returns its
// architecture.
func checkStatic(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("busybox %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("busybox %s is an ELF %s, not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, _ := io.ReadAll(io.LimitReader(p.Open(), 4096))
		return "", fmt.Errorf("busybox %s is dynamically linked (it needs %s) and would not run in an image without libc; install a static busybox (Debian: apt-get install busybox-static)",
			path, strings.TrimRight(string(interp), "\x00"))
	}
	arch := goArch(f.Machine, f.Class, f.ByteOrder)
	if arch == "" {
		return "", fmt.Errorf("busybox %s is built for machine %s, which Ouroboros does not know", path, f.Machine)
	}
	return arch, nil
}

// listApplets runs "busybox --list" and returns the applet names, sorted,
// and the version line of "busybox --help" ("" if it has none).
func listApplets(path string) (applets []string, version string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "--list")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("%s --list: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		switch {
		case a == "" || a == "busybox" || seen[a]:
			continue
		case a != "[" && a != "[[" && !appletRE.MatchString(a):
			return nil, "", fmt.Errorf("%s --list printed %q, which is not an applet name", path, truncate(a, 80))
		}
		seen[a] = true
		applets = append(applets, a)
	}
	if !seen["sh"] {
		return nil, "", fmt.Errorf("%s has no sh applet; the busybox image runs /bin/sh", path)
	}
	sort.Strings(applets)
	help, _ := exec.CommandContext(ctx, path, "--help").Output()
	if line, _, _ := strings.Cut(string(help), "\n"); strings.HasPrefix(line, "BusyBox v") {
		version = strings.TrimSuffix(strings.TrimSpace(line), " multi-call binary.")
	}
	return applets, version, nil
}

// busyboxEntry is one entry of the busybox layer.
type busyboxEntry struct {
	hdr  tar.Header
	data string
	// file, if set, is copied in as the entry's content.
	file string
}

// busyboxEntries lists the layer's entries in the order they are written:
// sorted by name, every directory before what it holds.
func busyboxEntries(binSize int64, busyboxPath string, applets []string) []busyboxEntry {
	dir := func(name string, mode int64) busyboxEntry {
		return busyboxEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
	}
	text := func(name, data string) busyboxEntry {
		return busyboxEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data: data}
	}
	entries := []busyboxEntry{
		dir("bin", 0o755),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: binSize}, file: busyboxPath},
		dir("dev", 0o755),
		dir("etc", 0o755),
		text("etc/group", busyboxGroup),
		text("etc/hostname", "localhost\n"),
		text("etc/hosts", busyboxHosts),
		text("etc/passwd", busyboxPasswd),
		text("etc/resolv.conf", busyboxResolv),
		dir("proc", 0o555),
		dir("root", 0o700),
		dir("sys", 0o555),
		dir("tmp", 0o1777),
		dir("var", 0o755),
		dir("var/tmp", 0o1777),
	}
	for _, a := range applets {
		entries = append(entries, busyboxEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	for i := range entries {
		h := &entries[i].hdr
		h.ModTime = busyboxTime
		h.Uname, h.Gname = "root", "root"
		h.Format = tar.FormatPAX
	}
	return entries
}

// writeBusyboxLayer writes the gzip layer into the workspace.
func writeBusyboxLayer(ws *workspace, busyboxPath string, applets []string) (Blob, error) {
	bin, err := os.Open(busyboxPath)
	if err != nil {
		return Blob{}, fmt.Errorf("busybox: %w", err)
	}
	defer bin.Close()
	fi, err := bin.Stat()
	if err != nil {
		return Blob{}, fmt.Errorf("busybox: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Blob{}, fmt.Errorf("busybox %s is not a regular file", busyboxPath)
	}
	f, err := ws.tempFile("busybox")
	if err != nil {
		return Blob{}, err
	}
	defer f.Close()
	sum := sha256.New()
	var n countWriter
	gz, err := gzip.NewWriterLevel(io.MultiWriter(f, sum, &n), gzip.BestCompression)
	if err != nil {
		return Blob{}, err
	}
	tw := tar.NewWriter(gz)
	for _, e := range busyboxEntries(fi.Size(), busyboxPath, applets) {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return Blob{}, fmt.Errorf("busybox layer: %s: %w", e.hdr.Name, err)
		}
		var err error
		switch {
		case e.file != "":
			_, err = io.CopyN(tw, bin, e.hdr.Size)
		case e.data != "":
			_, err = io.WriteString(tw, e.data)
		}
		if err != nil {
			return Blob{}, fmt.Errorf("busybox layer: %s: %w", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Blob{}, fmt.Errorf("busybox layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Blob{}, fmt.Errorf("busybox layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return Blob{}, fmt.Errorf("busybox layer: %w", err)
	}
	digest := "sha256:" + hex.EncodeToString(sum.Sum(nil))
	final := filepath.Join(ws.dir, strings.Replace(digest, ":", "-", 1))
	if err := ws.commit(f.Name(), final); err != nil {
		return Blob{}, err
	}
	return Blob{Blob: api.Blob{Digest: digest, Size: int64(n), MediaType: api.MediaTypeLayerGzip}, Path: final}, nil
}

package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzTar builds a tar from a script of lines "TYPE NAME [TARGET]", TYPE
// one of d (directory), f (file), l (symbolic link), h (hard link), so the
// fuzzer explores names and link targets rather than tar's checksums.
func fuzzTar(script string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, line := range strings.Split(script, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		h := &tar.Header{Name: fields[1], Mode: 0o755}
		var target string
		if len(fields) > 2 {
			target = fields[2]
		}
		switch fields[0] {
		case "d":
			h.Typeflag = tar.TypeDir
		case "f":
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(target)), 0o644
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, target
		default:
			continue
		}
		if tw.WriteHeader(h) != nil {
			return buf.Bytes()
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(target))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// FuzzExtractTar extracts hostile layers into root inside a fresh
// directory and checks that nothing was written beside root, whatever
// the names, symlinks and hard links.
func FuzzExtractTar(f *testing.F) {
	for _, s := range []string{
		"d etc\nf etc/hostname box",
		"l evil /\nf evil/etc/passwd x",
		"l up ..\nf up/escape x",
		"l abs /tmp\nh abs/x /etc/passwd",
		"d a\nl a/b ../../..\nf a/b/c x",
		"f ../outside x",
		"l lnk /etc/shadow\nh hard lnk",
		"d ./x/../../y",
	} {
		f.Add(s)
	}
	log := slog.New(slog.DiscardHandler)
	var host []os.FileInfo // host files a hard link must never reach
	for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/hostname"} {
		if fi, err := os.Stat(p); err == nil {
			host = append(host, fi)
		}
	}
	f.Fuzz(func(t *testing.T, script string) {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		// The mapping of new containers: owners shifted, capabilities rewritten.
		extractTar(context.Background(), bytes.NewReader(fuzzTar(script)), root, idMap{HostID: DefaultHostIDBase, Size: idMapSize}, log)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != dir && p != root && !strings.HasPrefix(p, root+string(filepath.Separator)) {
				t.Errorf("extraction wrote %s outside root", p)
			}
			if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
				for _, h := range host {
					if os.SameFile(fi, h) {
						t.Errorf("extraction made %s a hard link to the host's %s", p, h.Name())
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

package imageimport

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// tarFS is a read-only fs.FS over an uncompressed tar file, for image
// archives: it remembers where each file's data starts and reads it in
// place, so nothing is extracted.
type tarFS struct {
	f       *os.File
	entries map[string]tarEntry
}

type tarEntry struct {
	hdr    *tar.Header
	offset int64
}

// maxLinkHops bounds symlink chains inside an archive.
const maxLinkHops = 8

// indexTar reads the headers of the tar file f. On error it still returns
// the top-level names seen so far, so the caller can tell a broken image
// archive from a broken root filesystem.
func indexTar(f *os.File) (*tarFS, map[string]bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	t := &tarFS{f: f, entries: map[string]tarEntry{}}
	top := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return t, top, nil
		}
		if err != nil {
			return nil, top, err
		}
		name, ok := cleanName(hdr.Name)
		if !ok {
			continue
		}
		top[strings.SplitN(name, "/", 2)[0]] = true
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, top, err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
			t.entries[name] = tarEntry{hdr: hdr, offset: off}
		}
	}
}

// scanTarNames reads a tar stream to its end and returns its top-level
// names (the first error ends the scan, with the names seen so far).
func scanTarNames(r io.Reader) (map[string]bool, error) {
	top := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return top, nil
		}
		if err != nil {
			return top, err
		}
		if name, ok := cleanName(hdr.Name); ok {
			top[strings.SplitN(name, "/", 2)[0]] = true
		}
	}
}

// cleanName turns a tar or manifest path into an fs.FS name; ok is false
// for names that leave the archive or name its root.
func cleanName(n string) (string, bool) {
	n = path.Clean(strings.TrimPrefix(strings.TrimLeft(n, "/"), "./"))
	if n == "." || !fs.ValidPath(n) {
		return "", false
	}
	return n, true
}

// names returns the archive's top-level names.
func (t *tarFS) names() map[string]bool {
	top := map[string]bool{}
	for n := range t.entries {
		top[strings.SplitN(n, "/", 2)[0]] = true
	}
	return top
}

// Open opens a regular file of the archive, following symbolic and hard
// links that stay inside it.
func (t *tarFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	cur := name
	for range maxLinkHops {
		e, ok := t.entries[cur]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		switch e.hdr.Typeflag {
		case tar.TypeReg:
			return &tarFile{SectionReader: io.NewSectionReader(t.f, e.offset, e.hdr.Size), hdr: e.hdr}, nil
		case tar.TypeSymlink:
			target := e.hdr.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(cur), target)
			}
			next, ok := cleanName(target)
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("link leaves the archive")}
			}
			cur = next
		case tar.TypeLink:
			next, ok := cleanName(e.hdr.Linkname)
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("link leaves the archive")}
			}
			cur = next
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("more than %d links", maxLinkHops)}
}

// tarFile is one regular file of a tarFS.
type tarFile struct {
	*io.SectionReader
	hdr *tar.Header
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return f.hdr.FileInfo(), nil }
func (f *tarFile) Close() error               { return nil }

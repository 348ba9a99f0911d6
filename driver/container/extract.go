package container

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// extractTar unpacks a layer tar into root, which must be a fresh private
// directory. OCI whiteouts become overlayfs whiteouts. Nothing is ever
// written outside root: entries with ".." or absolute names are refused,
// and parent directories are resolved one component at a time, following
// symlinks only while they stay inside root. Owners are shifted by ids
// (ids outside its range become nobody), and file capabilities are
// rewritten for ids' root, so that a container in that user namespace
// sees the files as the image has them.
//
// Errors name the tar entry and paths inside the layer ("/etc/passwd"),
// never root: it is a temporary directory with a new name on every try,
// and a message that changes on every try defeats those who count
// repeats of a failure.
func extractTar(ctx context.Context, r io.Reader, root string, ids idMap, log *slog.Logger) error {
	x := &extractor{root: root, ids: ids, log: log}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		dt := x.dirTimes[i]
		if err := setTimes(dt.path, dt.atime, dt.mtime); err != nil {
			return fmt.Errorf("directory %s: %w", x.layerPath(dt.path), x.inLayer(err))
		}
	}
	return nil
}

type extractor struct {
	root     string
	ids      idMap
	log      *slog.Logger
	dirTimes []dirTime
}

type dirTime struct {
	path         string
	atime, mtime time.Time
}

// entry extracts one tar entry.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // archive-wide metadata, nothing to create
	}
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" { // the layer's root itself
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer root is not a directory")
		}
		return x.applyMeta(x.root, hdr)
	}
	dir, base := path.Split(name)
	parent, err := x.resolveDir(dir, true)
	if err != nil {
		return err
	}

	switch {
	case base == whiteoutOpaque:
		// Hide everything below this directory in lower layers.
		if err := unix.Lsetxattr(parent, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", dir, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // other AUFS bookkeeping (.wh..wh.plnk, ...)
	case strings.HasPrefix(base, whiteoutPrefix):
		target := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
		if err := os.RemoveAll(target); err != nil {
			return x.inLayer(err)
		}
		// An overlayfs whiteout is a 0/0 character device.
		if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("make whiteout: %w", err)
		}
		return nil
	}

	target := filepath.Join(parent, base)
	if fi, err := os.Lstat(target); err == nil {
		// A later entry replaces an earlier one, except that a directory
		// over a directory keeps its contents.
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return x.inLayer(err)
			}
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return x.inLayer(err)
		}
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := writeFile(target, r); err != nil {
			return x.inLayer(err)
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return x.inLayer(err)
		}
	case tar.TypeLink:
		src, err := x.resolveLinkTarget(hdr.Linkname)
		if err != nil {
			return err
		}
		// link(2) does not follow a symlink src: a hard link to a
		// symlink is a second name for the symlink, as in the tar.
		if err := os.Link(src, target); err != nil {
			return x.inLayer(err)
		}
		return nil // shares the inode (and metadata) of src
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, mode|uint32(hdr.Mode&0o777), int(dev)); err != nil {
			if hdr.Typeflag == tar.TypeFifo {
				return fmt.Errorf("make fifo: %w", err)
			}
			x.log.Debug("skipping device node", "name", name, "err", err)
			return nil
		}
	default:
		x.log.Debug("skipping unsupported tar entry", "name", name, "type", string(hdr.Typeflag))
		return nil
	}
	return x.applyMeta(target, hdr)
}

// applyMeta sets owner, mode, extended attributes and times of path.
func (x *extractor) applyMeta(p string, hdr *tar.Header) error {
	if err := os.Lchown(p, x.ids.host(hdr.Uid), x.ids.host(hdr.Gid)); err != nil {
		return x.inLayer(err)
	}
	for key, value := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		// Overlay's own attributes (redirects, metacopy) could make one
		// layer reach into another; only whiteouts may set them.
		if strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		if attr == "security.capability" && x.ids.enabled() {
			value = string(nsFileCaps([]byte(value), uint32(x.ids.root())))
		}
		if err := unix.Lsetxattr(p, attr, []byte(value), 0); err != nil {
			x.log.Debug("skipping extended attribute", "path", x.layerPath(p), "attr", attr, "err", err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-id bits.
		fm := hdr.FileInfo().Mode()
		if err := os.Chmod(p, fm&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return x.inLayer(err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirTimes = append(x.dirTimes, dirTime{path: p, atime: atime, mtime: hdr.ModTime})
		return nil
	}
	return x.inLayer(setTimes(p, atime, hdr.ModTime))
}

// resolveDir returns the host path of directory rel (relative to root),
// following symlinks only within root and, with create, making missing
// directories.
func (x *extractor) resolveDir(rel string, create bool) (string, error) {
	var cur []string // resolved components below root; never a symlink
	comps := splitPath(rel)
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", fmt.Errorf("path %q leads outside the layer", rel)
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(x.root, filepath.Join(cur...), c)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist) && create:
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", x.inLayer(err)
			}
			if err := os.Lchown(p, x.ids.root(), x.ids.root()); err != nil {
				return "", x.inLayer(err)
			}
			cur = append(cur, c)
		case err != nil:
			return "", x.inLayer(err)
		case fi.Mode()&os.ModeSymlink != 0:
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("path %q: too many levels of symbolic links", rel)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", x.inLayer(err)
			}
			if path.IsAbs(target) {
				// Absolute links mean the container's root: the layer's.
				cur = nil
			}
			comps = append(splitPath(target), comps...)
		case fi.IsDir():
			cur = append(cur, c)
		default:
			return "", fmt.Errorf("path %q: %s is not a directory", rel, path.Join(append(cur, c)...))
		}
	}
	return filepath.Join(x.root, filepath.Join(cur...)), nil
}

// resolveLinkTarget returns the host path of a hard link's target, which
// must already exist inside root and not be a directory.
func (x *extractor) resolveLinkTarget(linkname string) (string, error) {
	name, err := cleanEntryName(linkname)
	if err != nil || name == "" {
		return "", fmt.Errorf("hard link target %q: %v", linkname, err)
	}
	dir, base := path.Split(name)
	parent, err := x.resolveDir(dir, false)
	if err != nil {
		return "", fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	src := filepath.Join(parent, base)
	fi, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("hard link target %q: %w", linkname, x.inLayer(err))
	}
	if fi.IsDir() {
		return "", fmt.Errorf("hard link target %q is a directory", linkname)
	}
	return src, nil
}

// cleanEntryName returns a tar entry's name relative to the layer root
// ("" for the root itself). Absolute names and ".." components are
// refused.
func cleanEntryName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("absolute path %q refused", name)
	}
	for _, c := range splitPath(name) {
		if c == ".." {
			return "", fmt.Errorf("path %q with '..' refused", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// writeFile creates a new regular file at target with r's content.
func writeFile(target string, r io.Reader) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// nsFileCaps rewrites a security.capability value (VFS_CAP_REVISION_2
// or 3) as revision 3 with root id rootID: the kernel honours a file's
// capabilities only in user namespaces whose root is the file's root id
// (revision 2 means host root). Other values are returned as they are.
func nsFileCaps(v []byte, rootID uint32) []byte {
	const (
		revMask = 0xff000000
		rev2    = 0x02000000
		rev3    = 0x03000000
		size2   = 20 // magic_etc and two 64-bit sets as 32-bit halves
	)
	if len(v) < size2 {
		return v
	}
	magic := binary.LittleEndian.Uint32(v)
	if rev := magic & revMask; rev != rev2 && rev != rev3 {
		return v
	}
	out := make([]byte, size2+4)
	copy(out, v[:size2])
	binary.LittleEndian.PutUint32(out, rev3|magic&^revMask)
	binary.LittleEndian.PutUint32(out[size2:], rootID)
	return out
}

// setTimes sets the times of path without following a symlink.
func setTimes(p string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = time.Unix(0, 0)
	}
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "set times of", Path: p, Err: err}
	}
	return nil
}

// inLayer returns err with the host paths of a file system error
// (*fs.PathError, *os.LinkError) made paths inside the layer, so that it
// never names root (see extractTar). Other errors are returned as they
// are: they must not name host paths.
func (x *extractor) inLayer(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		return &fs.PathError{Op: e.Op, Path: x.layerPath(e.Path), Err: e.Err}
	case *os.LinkError:
		return &os.LinkError{Op: e.Op, Old: x.layerPath(e.Old), New: x.layerPath(e.New), Err: e.Err}
	}
	return err
}

// layerPath returns host path p below root as the path inside the layer
// ("/etc/passwd"). Anything else (a symlink's text) is returned as is.
func (x *extractor) layerPath(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	rel, err := filepath.Rel(x.root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return p
	}
	return path.Join("/", filepath.ToSlash(rel))
}

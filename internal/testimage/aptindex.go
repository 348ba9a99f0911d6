package testimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Debian's package index, read the way apt reads it: the suite's InRelease
// file, whose signature gpgv checks against the archive keyring, names the
// SHA-256 of each Packages index, and each index names the SHA-256 of each
// package file. Nothing unverified is cached or used.

// The sources apt reads, in the order the mirror is looked for.
var (
	aptSourcesDeb822 = "/etc/apt/sources.list.d/debian.sources"
	aptSourcesList   = "/etc/apt/sources.list"
)

// aptDefaultMirror is used when apt's sources name no HTTP mirror.
const aptDefaultMirror = "http://deb.debian.org/debian"

// debianKeyring holds the keys the Debian archive signs its indexes with.
const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// aptMirror returns the URI of the Debian mirror apt uses: the first
// enabled "deb" source over HTTP(S) that carries a release suite (such as
// bookworm, not bookworm-security or bookworm-updates).
func aptMirror() string {
	if data, err := os.ReadFile(aptSourcesDeb822); err == nil {
		if m := mirrorFromDeb822(string(data)); m != "" {
			return m
		}
	}
	if data, err := os.ReadFile(aptSourcesList); err == nil {
		if m := mirrorFromList(string(data)); m != "" {
			return m
		}
	}
	return aptDefaultMirror
}

// mirrorFromDeb822 reads sources in the deb822 format (Types:, URIs:,
// Suites: stanzas).
func mirrorFromDeb822(text string) string {
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(stanza, "\n") {
			switch {
			case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
			case line[0] == ' ' || line[0] == '\t':
				if last != "" {
					fields[last] += " " + strings.TrimSpace(line)
				}
			default:
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				last = strings.ToLower(strings.TrimSpace(k))
				fields[last] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !hasWord(fields["types"], "deb") {
			continue
		}
		if m := mirrorOf(strings.Fields(fields["uris"]), strings.Fields(fields["suites"])); m != "" {
			return m
		}
	}
	return ""
}

// mirrorFromList reads one-line sources: deb [options] uri suite
// component...
func mirrorFromList(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			continue
		}
		if m := mirrorOf(f[:1], f[1:2]); m != "" {
			return m
		}
	}
	return ""
}

// mirrorOf returns the first HTTP(S) URI if a suite is a release suite.
func mirrorOf(uris, suites []string) string {
	release := false
	for _, s := range suites {
		if s != "" && !strings.ContainsAny(s, "-/") {
			release = true
		}
	}
	if !release {
		return ""
	}
	for _, u := range uris {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return strings.TrimRight(u, "/")
		}
	}
	return ""
}

func hasWord(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if w == word {
			return true
		}
	}
	return false
}

// debPackage is one stanza of a Packages index.
type debPackage struct {
	Name, Version, Filename, SHA256 string
	Size                            int64
}

// packageIndex returns the packages of the suite's component for arch
// (e.g. bookworm, main, arm64) for which keep is true. The signed
// InRelease of the last run and the Packages.xz it names stay in dir, so
// an unreachable mirror falls back on them.
func packageIndex(ctx context.Context, mirror, suite, component, arch, dir string, keep func(name string) bool, logf func(string, ...any)) ([]debPackage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("package index cache: %w", err)
	}
	inRelease := filepath.Join(dir, "InRelease-"+suite)
	fresh, err := httpGet(ctx, mirror+"/dists/"+suite+"/InRelease", 64<<20)
	if err != nil {
		if _, serr := os.Stat(inRelease); serr != nil {
			return nil, err
		}
		logf("Debian mirror unreachable (%v): using the package index of an earlier run", err)
	} else {
		tmp := inRelease + ".new"
		if err := os.WriteFile(tmp, fresh, 0o644); err != nil {
			return nil, fmt.Errorf("package index cache: %w", err)
		}
		defer os.Remove(tmp)
		if _, err := verifyInRelease(ctx, tmp); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, inRelease); err != nil {
			return nil, fmt.Errorf("package index cache: %w", err)
		}
	}
	signed, err := verifyInRelease(ctx, inRelease)
	if err != nil {
		return nil, err
	}
	if codename := releaseField(signed, "Codename"); codename != suite {
		return nil, fmt.Errorf("InRelease of %s says Codename %q", suite, codename)
	}
	name := component + "/binary-" + arch + "/Packages.xz"
	sum, size, err := releaseEntry(signed, name)
	if err != nil {
		return nil, err
	}
	index := filepath.Join(dir, "Packages-"+suite+"-"+arch+"-"+sum[:16]+".xz")
	if err := fetchVerified(ctx, mirror+"/dists/"+suite+"/"+name, index, sum, size); err != nil {
		return nil, err
	}
	// Indexes of earlier releases are not needed any more.
	old, _ := filepath.Glob(filepath.Join(dir, "Packages-"+suite+"-"+arch+"-*.xz"))
	for _, p := range old {
		if p != index {
			os.Remove(p)
		}
	}
	return readPackagesXZ(ctx, index, keep)
}

// verifyInRelease checks the signature of a clear-signed InRelease file
// with gpgv and returns the signed text (only that: anything outside the
// signature is dropped).
func verifyInRelease(ctx context.Context, path string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "gpgv", "--keyring", debianKeyring, "--output", "-", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("InRelease signature does not verify with %s: %w: %s",
			debianKeyring, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// releaseField returns a single-line field of a Release file.
func releaseField(release []byte, field string) string {
	for _, line := range strings.Split(string(release), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// releaseEntry returns the SHA-256 and size the Release file gives for
// the index at name.
func releaseEntry(release []byte, name string) (sum string, size int64, err error) {
	inSHA256 := false
	for _, line := range strings.Split(string(release), "\n") {
		if line == "" || (line[0] != ' ' && line[0] != '\t') {
			inSHA256 = strings.TrimSpace(line) == "SHA256:"
			continue
		}
		f := strings.Fields(line)
		if !inSHA256 || len(f) != 3 || f[2] != name {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || !sha256Hex.MatchString(f[0]) {
			return "", 0, fmt.Errorf("Release entry for %s is malformed: %q", name, line)
		}
		return f[0], size, nil
	}
	return "", 0, fmt.Errorf("the Release file has no SHA256 entry for %s", name)
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readPackagesXZ decompresses an index with xz and returns the stanzas of
// the packages keep wants.
func readPackagesXZ(ctx context.Context, path string, keep func(string) bool) ([]debPackage, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", path)
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	pkgs, perr := parsePackages(out, keep)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("xz %s: %w: %s", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	if perr != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), perr)
	}
	return pkgs, nil
}

// parsePackages reads the stanzas of a Packages index whose Package
// keep wants. A wanted stanza must be complete and name a file in the
// pool.
func parsePackages(r io.Reader, keep func(string) bool) ([]debPackage, error) {
	var out []debPackage
	var cur map[string]string
	flush := func() error {
		defer func() { cur = nil }()
		if cur == nil || !keep(cur["Package"]) {
			return nil
		}
		p := debPackage{Name: cur["Package"], Version: cur["Version"], Filename: cur["Filename"], SHA256: cur["SHA256"]}
		size, err := strconv.ParseInt(cur["Size"], 10, 64)
		if err != nil || size <= 0 || p.Version == "" || !sha256Hex.MatchString(p.SHA256) || !poolPath(p.Filename) {
			return fmt.Errorf("package %s: incomplete or malformed stanza", p.Name)
		}
		p.Size = size
		out = append(out, p)
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation (descriptions): nothing we read
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if cur == nil {
			cur = map[string]string{}
		}
		cur[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// poolPath reports whether name is a plain path under the archive's pool.
func poolPath(name string) bool {
	if !strings.HasPrefix(name, "pool/") || strings.ContainsAny(name, "?#\\ ") {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// fetchDeb returns the path of the package's file in dir (named by its
// SHA-256), downloading it from the mirror unless it is there.
func fetchDeb(ctx context.Context, mirror string, p debPackage, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	dst := filepath.Join(dir, p.SHA256+".deb")
	if err := fetchVerified(ctx, mirror+"/"+p.Filename, dst, p.SHA256, p.Size); err != nil {
		return "", fmt.Errorf("package %s %s: %w", p.Name, p.Version, err)
	}
	return dst, nil
}

// fetchVerified makes dst hold the content of url that has SHA-256 sum
// and size bytes. A dst that already does is kept. The download goes to a
// temporary file renamed to dst only once its size and sum are right, so
// a truncated or altered download never takes dst's name.
func fetchVerified(ctx context.Context, url, dst, sum string, size int64) error {
	if got, err := fileSHA256(dst); err == nil && got == sum {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("got %d bytes, the index says %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); err == nil && got != sum {
		err = fmt.Errorf("SHA-256 %s, the index says %s", got, sum)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// httpGet returns the body of url, at most limit bytes.
func httpGet(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("download %s: larger than %d bytes", url, limit)
	}
	return data, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// runQuiet runs a program, returning its output in the error if it fails.
// A test killed half-way takes the program with it.
func runQuiet(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return nil
}

var errNoPackage = errors.New("not in the package index")

// Package ceph stores volumes as RBD images in a pool of an existing Ceph
// cluster. It stays pure Go: control goes through the rbd and ceph tools
// (argv only, --format json, a minimal ceph.conf of its own), data goes
// through QEMU's rbd driver (VMs open the image themselves; containers get
// a block device from qemu-storage-daemon or rbd-nbd).
//
//	volume id ──► image "ouro-<id>" in the pool
//	snapshot  ──► image snapshot "<snapshot id>", protected (clones need it)
//	from snapshot ──► rbd clone, then rbd flatten: the new volume depends on nothing
//	from image    ──► rbd import (raw) or qemu-img convert (qcow2)
//
// A new image is built under a temporary name and renamed when complete,
// so an image under its final name is always whole and a retried Create
// after a crash starts over.
//
// Every control call runs under a deadline: below min_size Ceph I/O hangs
// without an error, and a call that does not answer in time fails with
// ErrStalled instead of hanging its caller.
package ceph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/volume"
)

// ErrStalled is returned (wrapped) by a call the cluster did not answer
// within the backend's timeout: its monitors are unreachable, or too few
// OSDs are up for the pool (below min_size I/O waits without an error).
var ErrStalled = errors.New("ceph: the cluster did not answer in time")

// DefaultTimeout bounds each control call when Config.Timeout is zero.
const DefaultTimeout = time.Minute

// imagePrefix starts the name of every image this package makes.
const imagePrefix = "ouro-"

// features are the RBD features of every image: layering (clones) and
// exclusive-lock (one writer at a time, passed on request).
const features = "layering,exclusive-lock"

// Config says which cluster, pool and credentials a Backend uses.
type Config struct {
	// Monitors are the cluster's monitors, host:port (msgr v1 port) or
	// host (port 6789).
	Monitors []string
	// Pool is the RBD pool holding the images.
	Pool string
	// User is the cephx id without "client." and Key its base64 secret.
	User, Key string
	// Dir is a private directory (0700) for the generated ceph.conf, the
	// keyring and the block-device exports of MapBlock.
	Dir string
	// Timeout bounds each control call (DefaultTimeout if zero).
	Timeout time.Duration
}

// Backend is a ceph pool's volumes. It implements volume.Backend.
type Backend struct {
	cfg     Config
	conf    string // ceph.conf path
	keyring string // keyring path
	keyFile string // the bare base64 key, for QEMU's secret objects
}

var _ volume.Backend = (*Backend)(nil)

// New returns the backend of cfg, writing its ceph.conf and keyring into
// cfg.Dir. It does not contact the cluster (Validate does).
func New(cfg Config) (*Backend, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Dir == "" {
		return nil, errors.New("ceph: no directory for the pool's files")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ceph: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ceph: %w", err)
	}
	b := &Backend{
		cfg:     cfg,
		conf:    filepath.Join(cfg.Dir, "ceph.conf"),
		keyring: filepath.Join(cfg.Dir, "keyring"),
		keyFile: filepath.Join(cfg.Dir, "key"),
	}
	// admin_socket is empty: tools run concurrently, none needs a socket.
	conf := fmt.Sprintf("[global]\nmon_host = %s\nkeyring = %s\nadmin_socket =\nlog_file =\nclient_mount_timeout = 15\n",
		strings.Join(monHosts(cfg.Monitors), ","), b.keyring)
	keyring := fmt.Sprintf("[client.%s]\n\tkey = %s\n", cfg.User, cfg.Key)
	for path, data := range map[string]string{b.conf: conf, b.keyring: keyring, b.keyFile: cfg.Key} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			return nil, fmt.Errorf("ceph: %w", err)
		}
	}
	return b, nil
}

// checkConfig checks a Config's form (not the cluster).
func checkConfig(cfg Config) error {
	if len(cfg.Monitors) == 0 {
		return errors.New("ceph: no monitors")
	}
	for _, m := range cfg.Monitors {
		if _, _, err := splitMonitor(m); err != nil {
			return err
		}
	}
	if !namePattern.MatchString(cfg.Pool) {
		return fmt.Errorf("ceph: bad pool name %q", cfg.Pool)
	}
	if !namePattern.MatchString(cfg.User) {
		return fmt.Errorf("ceph: bad user %q", cfg.User)
	}
	if err := checkKey(cfg.Key); err != nil {
		return err
	}
	return nil
}

// namePattern is what pool, user, volume and snapshot names may hold:
// nothing the rbd tool's pool/image@snap syntax or a shell would read.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// splitMonitor splits host[:port] (or [v6]:port); the port defaults to
// 6789, the monitors' msgr v1 port.
func splitMonitor(m string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(m)
	if err != nil {
		host, port = strings.Trim(m, "[]"), "6789"
	}
	if host == "" || strings.ContainsAny(host, " ,/@=;[]") {
		return "", "", fmt.Errorf("ceph: bad monitor address %q", m)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("ceph: bad monitor port in %q", m)
	}
	return host, port, nil
}

// monHosts returns the monitors as mon_host entries (msgr v1).
func monHosts(mons []string) []string {
	out := make([]string, 0, len(mons))
	for _, m := range mons {
		host, port, _ := splitMonitor(m)
		out = append(out, "v1:"+net.JoinHostPort(host, port))
	}
	return out
}

// image returns the RBD image name of volume id.
func image(id string) (string, error) {
	if !namePattern.MatchString(id) {
		return "", fmt.Errorf("ceph: bad volume id %q", id)
	}
	return imagePrefix + id, nil
}

// spec returns pool/name.
func (b *Backend) spec(name string) string { return b.cfg.Pool + "/" + name }

// rbd runs the rbd tool on the pool's cluster and returns its output.
func (b *Backend) rbd(ctx context.Context, args ...string) ([]byte, error) {
	return b.run(ctx, "rbd", args...)
}

// ceph runs the ceph tool on the pool's cluster and returns its output.
func (b *Backend) ceph(ctx context.Context, args ...string) ([]byte, error) {
	return b.run(ctx, "ceph", args...)
}

// run runs a ceph tool with the backend's configuration, identity and
// deadline. A failure is a *cliError carrying the tool's errno.
func (b *Backend) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	secs := strconv.Itoa(max(1, int(b.cfg.Timeout/time.Second)))
	argv := append([]string{
		"-c", b.conf, "-m", strings.Join(monHosts(b.cfg.Monitors), ","),
		"--id", b.cfg.User, "--keyring", b.keyring,
		"--rados-mon-op-timeout", secs, "--rados-osd-op-timeout", secs,
	}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, argv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	what := tool + " " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: no answer in %v (monitors unreachable, or the pool below min_size?): %w", what, b.cfg.Timeout, ErrStalled)
	}
	ce := &cliError{what: what, stderr: lastLine(stderr.String())}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		ce.errno = syscall.Errno(exit.ExitCode())
		// The ceph tool (Python) exits 1 and names the errno instead.
		if m := errnoPattern.FindStringSubmatch(stderr.String()); m != nil {
			n, _ := strconv.Atoi(m[1])
			ce.errno = syscall.Errno(n)
		}
	} else {
		ce.stderr = err.Error()
	}
	if ce.errno == syscall.ETIMEDOUT {
		return nil, fmt.Errorf("%w: %w", ce, ErrStalled)
	}
	return nil, ce
}

// errnoPattern finds the errno in the ceph tool's error message.
var errnoPattern = regexp.MustCompile(`\[errno (\d+)\]`)

// cliError is a failed rbd or ceph call: both exit with the errno of the
// failed operation (2 for ENOENT, 17 for EEXIST, 16 for EBUSY).
type cliError struct {
	what   string
	errno  syscall.Errno
	stderr string
}

func (e *cliError) Error() string {
	return fmt.Sprintf("%s: %s (errno %d)", e.what, e.stderr, int(e.errno))
}

// Is lets errors.Is match the errno (syscall.ENOENT and so on).
func (e *cliError) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && errno == e.errno
}

// lastLine returns the last non-empty line of s: the tools print their
// error last, after library log lines.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Package vm runs instances as QEMU virtual machines.
//
// A VM boots from a copy-on-write qcow2 overlay of a cached base disk, or
// directly from a kernel and initramfs (QEMU -kernel), with a cloud-init
// NoCloud seed attached. KVM is used when a time-boxed probe boot shows it
// works; otherwise TCG (see probe.go). The driver talks to QEMU over QMP
// with a small client of its own (qmp.go).
//
// QEMU is started with -daemonize: the launching process exits once the
// VM is set up, and the VM itself is re-parented to init, so it outlives
// the agent. Nothing is kept in memory: a new Driver on the same
// directories finds running VMs by their pid files and QMP sockets and
// adopts them.
//
// Everything lives under Config.Dir, sockets under Config.RunDir (unix
// socket paths are limited to 107 bytes):
//
//	<Dir>/images/<hex>                 cached base disk, kernel or initrd
//	                                   (read-only, one per blob digest)
//	<Dir>/kernels/<hex>-pvh/vmlinux    an x86 kernel decompressed for its
//	                                   PVH entry (pvh.go), when it has one
//	<Dir>/instances/<id>/
//	    spec.json                      the driver.Spec (written last by Create)
//	    disk.qcow2                     the instance's overlay of the base disk
//	    seed.iso                       cloud-init NoCloud seed (volume cidata)
//	    serial.log                     serial console output (LogPath)
//	    qemu.log                       QEMU's own messages
//	    qemu.pid                       written by QEMU, removed when it exits
//	    run.json                       pid and start time of the last start
//	    exit.json                      written when the guest powered off
//	<RunDir>/<id>/qmp.sock             QMP monitor
//	<RunDir>/<id>/console.sock         serial console (one client at a time)
//
// The life of an instance:
//
//	Create ──▶ created ──Start──▶ running ──Stop/guest poweroff──▶ stopped
//	                                 ▲                                 │
//	                                 └───────────── Start ─────────────┘
//	(any) ──Delete──▶ gone (no process, socket or file left)
//
// A guest that powers off does not end QEMU (-action shutdown=pause): the
// paused VM reports status "shutdown" over QMP, and the next Inspect
// records exit code 0 and ends QEMU. A QEMU that ended any other way
// (killed, crashed) reports stopped without an exit code.
package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/keymutex"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/blobcache"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
)

// Config configures a Driver.
type Config struct {
	// Dir holds images and instances, e.g. <agent-data>/vms. It must be
	// an absolute path without ',' (QEMU option syntax).
	Dir string
	// RunDir holds the QMP and console sockets. Default: a directory
	// under /run/ouro-vm named after a hash of Dir.
	RunDir string
	// Blobs supplies image content by digest.
	Blobs driver.BlobSource
	// QEMU is the system emulator; default qemu-system-x86_64 on amd64 and
	// qemu-system-aarch64 on arm64, from PATH.
	QEMU string
	// QEMUImg and Genisoimage default to "qemu-img" and "genisoimage".
	QEMUImg     string
	Genisoimage string
	// Accel is "auto" (the default: KVM if a probe boot works, else TCG),
	// "kvm" or "tcg".
	Accel string
	// ProbeTimeout bounds the KVM probe boot; default 3s.
	ProbeTimeout time.Duration
	// Machine is the x86_64 machine type, "q35" (default) or "pc".
	Machine string
	// NoPVH boots x86_64 kernel images as they are (firmware, then the
	// kernel's own decompressor) instead of their uncompressed form
	// through the PVH entry (pvh.go).
	NoPVH bool
	// Firmware is the UEFI image that boots aarch64 disk images; default
	// the first of the usual Debian paths that exists.
	Firmware string
	// Logger receives the driver's logs; default slog.Default().
	Logger *slog.Logger
}

// Driver runs QEMU virtual machines. It implements driver.Driver,
// driver.Consoler, driver.UsageReader and driver.Rebooter.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	arch string // GOARCH of the guests: the host's

	// instances holds the instance directories, images the cached
	// blobs of images.
	instances *instancedir.Root
	images    *blobcache.Cache
	// kernels holds kernels decompressed for their PVH entry.
	kernels *blobcache.Derived

	// instLocks serialises operations on one instance, qmpLocks the
	// sessions on one monitor (QEMU serves one at a time).
	instLocks keymutex.Map
	qmpLocks  keymutex.Map
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Consoler    = (*Driver)(nil)
	_ driver.UsageReader = (*Driver)(nil)
	_ driver.Rebooter    = (*Driver)(nil)
)

// Timeouts.
const (
	// launchTimeout bounds QEMU's start until it daemonizes.
	launchTimeout = 60 * time.Second
	// qmpTimeout bounds one QMP session.
	qmpTimeout = 5 * time.Second
	// killTimeout is how long QEMU gets to exit after quit or SIGKILL.
	killTimeout = 10 * time.Second
)

// idPattern is what instance ids look like (UIDs); ids become paths.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// New returns a driver. It only checks cfg; directories are created when
// first needed and QEMU is first run by Fingerprint or Start.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("vm driver: Config.Dir is required")
	}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("vm driver: Config.Dir %q must be an absolute path", cfg.Dir)
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if cfg.RunDir == "" {
		sum := sha256.Sum256([]byte(cfg.Dir))
		cfg.RunDir = filepath.Join("/run/ouro-vm", hex.EncodeToString(sum[:4]))
	}
	if !filepath.IsAbs(cfg.RunDir) {
		return nil, fmt.Errorf("vm driver: Config.RunDir %q must be an absolute path", cfg.RunDir)
	}
	cfg.RunDir = filepath.Clean(cfg.RunDir)
	for _, d := range []string{cfg.Dir, cfg.RunDir} {
		if strings.ContainsAny(d, ",\n") {
			return nil, fmt.Errorf("vm driver: directory %q must not contain ',' or a newline (QEMU option syntax)", d)
		}
	}
	// 64 bytes of id and "/console.sock" must fit in sun_path (108).
	if len(cfg.RunDir) > 28 {
		return nil, fmt.Errorf("vm driver: Config.RunDir %q is longer than 28 bytes: socket paths would not fit", cfg.RunDir)
	}
	if cfg.Blobs == nil {
		return nil, errors.New("vm driver: Config.Blobs is required")
	}
	arch := runtime.GOARCH
	if cfg.QEMU == "" {
		switch arch {
		case "amd64":
			cfg.QEMU = "qemu-system-x86_64"
		case "arm64":
			cfg.QEMU = "qemu-system-aarch64"
		default:
			return nil, fmt.Errorf("vm driver: no QEMU for host architecture %s (amd64 and arm64 are supported)", arch)
		}
	}
	if cfg.QEMUImg == "" {
		cfg.QEMUImg = "qemu-img"
	}
	if cfg.Genisoimage == "" {
		cfg.Genisoimage = "genisoimage"
	}
	switch cfg.Accel {
	case "":
		cfg.Accel = "auto"
	case "auto", "kvm", "tcg":
	default:
		return nil, fmt.Errorf("vm driver: Config.Accel %q: use auto, kvm or tcg", cfg.Accel)
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 3 * time.Second
	}
	switch cfg.Machine {
	case "":
		cfg.Machine = "q35"
	case "q35", "pc":
	default:
		return nil, fmt.Errorf("vm driver: Config.Machine %q: use q35 or pc", cfg.Machine)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("driver", "vm")
	images := blobcache.New(filepath.Join(cfg.Dir, "images"), cfg.Blobs, log)
	return &Driver{
		cfg:       cfg,
		log:       log,
		arch:      arch,
		instances: instancedir.New(filepath.Join(cfg.Dir, "instances"), idPattern),
		images:    images,
		kernels:   blobcache.NewDerived(images, filepath.Join(cfg.Dir, "kernels"), buildPVHKernel, log),
	}, nil
}

// Name returns "vm".
func (d *Driver) Name() string { return "vm" }

// Fingerprint reports whether QEMU, qemu-img and genisoimage exist, and
// which accelerator VMs get: Detail is "kvm" or "tcg: <why>".
func (d *Driver) Fingerprint(ctx context.Context) driver.Info {
	var missing []string
	for _, prog := range []string{d.cfg.QEMU, d.cfg.QEMUImg, d.cfg.Genisoimage} {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, prog+" not found")
		}
	}
	if len(missing) > 0 {
		return driver.Info{Available: false, Detail: strings.Join(missing, "; ")}
	}
	a := d.accel(ctx)
	return driver.Info{Available: true, Detail: a.detail()}
}

// LogPath returns the file holding the VM's serial console output.
func (d *Driver) LogPath(id string) string {
	return filepath.Join(d.instanceDir(id), "serial.log")
}

// List returns the ids of the instances under Dir.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ids, err := d.instances.List()
	if err != nil {
		return nil, fmt.Errorf("list vm instances: %w", err)
	}
	return ids, nil
}

// checkID refuses ids that are not safe as paths.
func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("invalid vm instance id %q: want 1 to 64 lower-case letters, digits and '-'", id)
	}
	return nil
}

// instancePaths are the files of one instance.
type instancePaths struct {
	dir, spec, disk, seed, serial, qemuLog, pidFile, run, exit string
	runDir, qmp, console                                       string
}

func (d *Driver) instanceDir(id string) string { return d.instances.Path(id) }

func (d *Driver) paths(id string) instancePaths {
	dir := d.instanceDir(id)
	run := filepath.Join(d.cfg.RunDir, id)
	return instancePaths{
		dir:     dir,
		spec:    d.instances.SpecPath(id),
		disk:    filepath.Join(dir, "disk.qcow2"),
		seed:    filepath.Join(dir, "seed.iso"),
		serial:  filepath.Join(dir, "serial.log"),
		qemuLog: filepath.Join(dir, "qemu.log"),
		pidFile: filepath.Join(dir, "qemu.pid"),
		run:     filepath.Join(dir, "run.json"),
		exit:    filepath.Join(dir, "exit.json"),
		runDir:  run,
		qmp:     filepath.Join(run, "qmp.sock"),
		console: filepath.Join(run, "console.sock"),
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Package container runs instances as Linux containers with an OCI
// runtime, runc or crun (runtime.go).
//
// An instance's root filesystem is an overlay mount of cached, extracted
// OCI image layers (read-only, shared by all instances) under a private
// writable layer that survives stop and start like a VM's disk. Each
// running container is watched by a small detached shim process, so it
// outlives the agent and its exit code is recorded. Containers run in a
// user namespace whose root is an unprivileged host user (idmap.go) and
// under a seccomp filter (seccomp.go).
//
// Everything the driver knows lives on disk under Config.Dir:
//
//	<Dir>/blobs/<hex>                   fetched layer blob (package blobcache)
//	<Dir>/layers/<hex>/                 extracted layer, one per digest
//	<Dir>/layers/<hex>-u<base>-<size>/  the same with owners shifted for
//	                                    a user namespace (see idmap.go)
//	<Dir>/instances/<id>/
//	    spec.json                       the driver.Spec (written last by Create)
//	    bundle/config.json              OCI runtime spec
//	    bundle/{hostname,hosts}         files bind-mounted into /etc
//	    upper/ work/ rootfs/            overlay directories and mount point
//	    console.log                     container stdout and stderr
//	    shim.log shim.pid               the shim's own log and pid
//	    container.pid exit.json         written by the runtime and the shim
//	    runtime                         the runtime that started it
//
// The life of an instance:
//
//	Create ──▶ created ──Start──▶ running ──Stop/exit──▶ stopped
//	                                 ▲                      │
//	                                 └──────── Start ───────┘
//	(any) ──Delete──▶ gone (no process, mount, cgroup or file left)
//
// Every method is idempotent and safe to repeat after a crash at any line;
// a new Driver on the same Dir adopts running containers.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/blobcache"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
	"github.com/ouroboros-cloud/ouro/internal/keymutex"
)

// Config configures a Driver.
type Config struct {
	// Dir holds layers and instances, e.g. <agent-data>/containers. It
	// must be an absolute path without ',' or ':' (they would break the
	// overlay mount options).
	Dir string
	// Blobs supplies image layers by digest.
	Blobs driver.BlobSource
	// Runtime is the OCI runtime program, runc or crun (a path, or a name
	// looked up in PATH); default "runc". The agent uses
	// PreferredRuntime: crun where it can, since only crun (or runc 1.2
	// and later) lets containers joined to a network namespace of the host
	// have a user namespace.
	Runtime string
	// RuntimeRoot is the runtime's state directory (--root); empty means
	// its default (/run/runc, /run/crun).
	RuntimeRoot string
	// ShimCommand starts the shim; the driver appends its arguments.
	// Default: [os.Executable(), "container-shim"].
	ShimCommand []string
	// ShimEnv is added to the shim's environment.
	ShimEnv []string
	// Logger receives the driver's logs; default slog.Default().
	Logger *slog.Logger
	// HostIDBase is the host uid and gid of containers' root: container
	// ids 0-65535 are host ids HostIDBase to HostIDBase+65535, a range no
	// host user may own. Default DefaultHostIDBase (100000).
	HostIDBase uint32
	// NoUserNamespace runs new containers as host root, without a user
	// namespace (for kernels that lack them).
	NoUserNamespace bool
}

// Driver runs containers with an OCI runtime. It implements
// driver.Driver, driver.Execer and driver.TTYExecer.
type Driver struct {
	cfg Config
	log *slog.Logger
	// idMap is the user namespace mapping of new containers.
	idMap idMap
	// runtime is the configured OCI runtime, which starts containers;
	// runtimeVersion what it says of itself, read once.
	runtime         runc
	runtimeInfoOnce sync.Once
	runtimeVersion  runtimeInfo

	// instances holds the instance directories, blobs the fetched layer
	// blobs and layers their extractions.
	instances *instancedir.Root
	blobs     *blobcache.Cache
	layers    *blobcache.Derived

	// standby is the shim started ahead for the next Start.
	standby standbyPool

	// instLocks serialises operations on one instance.
	instLocks keymutex.Map
}

var (
	_ driver.Driver    = (*Driver)(nil)
	_ driver.Execer    = (*Driver)(nil)
	_ driver.TTYExecer = (*Driver)(nil)
)

// Timeouts for waiting on runc and the shim.
const (
	startTimeout = 30 * time.Second
	killTimeout  = 10 * time.Second
	shimTimeout  = 10 * time.Second
	// deleteStopTimeout is the grace a container gets when it is deleted
	// while running (the agent stops it first when it wants more).
	deleteStopTimeout = 2 * time.Second
)

// idPattern is what instance ids look like (UIDs); ids become paths and
// runc container ids, so nothing else is accepted.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,127}$`)

// New returns a driver. It only checks cfg; directories are created when
// first needed.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("container driver: Config.Dir is required")
	}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("container driver: Config.Dir %q must be an absolute path", cfg.Dir)
	}
	if strings.ContainsAny(cfg.Dir, ",:") {
		return nil, fmt.Errorf("container driver: Config.Dir %q must not contain ',' or ':' (overlay mount options)", cfg.Dir)
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if cfg.Blobs == nil {
		return nil, errors.New("container driver: Config.Blobs is required")
	}
	if cfg.Runtime == "" {
		cfg.Runtime = "runc"
	}
	if len(cfg.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("container driver: find own executable for the shim: %w", err)
		}
		cfg.ShimCommand = []string{exe, "container-shim"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var ids idMap
	if !cfg.NoUserNamespace {
		var err error
		if ids, err = newIDMap(cfg.HostIDBase); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger.With("driver", "container")
	d := &Driver{
		cfg:       cfg,
		log:       log,
		runtime:   runc{path: cfg.Runtime, root: cfg.RuntimeRoot},
		idMap:     ids,
		instances: instancedir.New(filepath.Join(cfg.Dir, "instances"), idPattern),
	}
	d.blobs = blobcache.New(d.blobsDir(), cfg.Blobs, log)
	d.layers = blobcache.NewDerived(d.blobs, d.layersDir(), d.extractLayer, log)
	return d, nil
}

// Name returns "container".
func (d *Driver) Name() string { return "container" }

// Fingerprint reports whether the runtime, root and overlayfs are
// available.
func (d *Driver) Fingerprint(ctx context.Context) driver.Info {
	var missing []string
	if p, err := exec.LookPath(d.cfg.Runtime); err != nil {
		missing = append(missing, fmt.Sprintf("OCI runtime not found (%s)", d.cfg.Runtime))
	} else if out, err := exec.CommandContext(ctx, p, "--version").Output(); err != nil {
		missing = append(missing, fmt.Sprintf("%s --version failed: %v", p, err))
	} else if parseRuntimeVersion(string(out)).name == "" {
		missing = append(missing, fmt.Sprintf("%s --version: unexpected output %q", p, firstLine(string(out))))
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "not running as root")
	}
	if ok, err := overlaySupported(); err != nil {
		missing = append(missing, fmt.Sprintf("check overlayfs: %v", err))
	} else if !ok {
		missing = append(missing, "overlay filesystem not in /proc/filesystems (modprobe overlay)")
	}
	if len(missing) > 0 {
		return driver.Info{Available: false, Detail: strings.Join(missing, "; ")}
	}
	return driver.Info{Available: true}
}

// LogPath returns the file holding the container's stdout and stderr.
func (d *Driver) LogPath(id string) string {
	return filepath.Join(d.instanceDir(id), "console.log")
}

// List returns the ids of the instances under Dir.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ids, err := d.instances.List()
	if err != nil {
		return nil, fmt.Errorf("list container instances: %w", err)
	}
	return ids, nil
}

// Create fetches the image layers, prepares the instance's directories
// and writes its OCI bundle. It does not mount or start anything.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := checkID(spec.ID); err != nil {
		return err
	}
	if _, err := processArgs(spec); err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	if len(spec.Image.Layers) == 0 {
		return fmt.Errorf("create container %s: image has no layers", spec.ID)
	}
	unlock := d.instLocks.Lock(spec.ID)
	defer unlock()

	ids := d.newInstanceIDMap(ctx, spec)
	layers, err := d.ensureLayers(ctx, spec.Image.Layers, ids)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	if err := d.prepareInstanceDirs(spec.ID, ids); err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	// The bundle first, spec.json last: spec.json marks a complete Create.
	if err := d.writeBundle(spec, layers, ids); err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	if err := d.instances.WriteSpec(spec); err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	d.log.Info("container created", "id", spec.ID, "layers", len(layers))
	return nil
}

// Inspect returns the state of an instance: running per runc, stopped per
// runc or the shim's exit record, created if it has a bundle but never ran.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	if err := checkID(id); err != nil {
		return driver.Status{}, err
	}
	p := d.paths(id)
	if !fileExists(p.dir) {
		return driver.Status{}, driver.ErrNotFound
	}
	// A container never started has no runtime state: spare the call.
	var st runcState
	found := false
	if rt := d.runtimeOf(p); rt.mayHold(id) {
		var err error
		if st, found, err = rt.state(ctx, id); err != nil {
			return driver.Status{}, fmt.Errorf("inspect container %s: %w", id, err)
		}
	}
	if found && (st.Status == "running" || st.Status == "paused") {
		return driver.Status{State: driver.StateRunning, Pid: st.Pid, StartedAt: d.startedAt(p, st)}, nil
	}
	if _, err := os.Stat(p.spec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return driver.Status{}, driver.ErrNotFound
		}
		return driver.Status{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	rec, ok, err := d.exitRecord(ctx, p, found && st.Status == "stopped")
	if err != nil {
		return driver.Status{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	switch {
	case ok:
		s := driver.Status{State: driver.StateStopped, ExitCode: rec.ExitCode, HasExitCode: true, FinishedAt: rec.FinishedAt}
		if fi, err := os.Stat(p.pidFile); err == nil {
			s.StartedAt = fi.ModTime()
		}
		return s, nil
	case found && (st.Status == "creating" || st.Status == "created"):
		return driver.Status{State: driver.StateCreated, Pid: st.Pid}, nil // being started
	case found || fileExists(p.pidFile):
		// It ran (runc still knows it, or it left a pid file) but the
		// shim did not record an exit: it died with its container.
		return driver.Status{State: driver.StateStopped}, nil
	default:
		return driver.Status{State: driver.StateCreated}, nil
	}
}

// exitWait bounds how long Inspect waits for a live shim to record the
// exit of a container the runtime already reports stopped.
const exitWait = 5 * time.Second

// exitRecord reads the shim's exit record. The runtime reports a container
// stopped as soon as its process ends, a moment before the shim, which
// waits on the runtime, writes the record: when the runtime says stopped
// and the shim lives, wait for the record rather than report an exit
// without its code.
func (d *Driver) exitRecord(ctx context.Context, p instancePaths, stopped bool) (exitRecord, bool, error) {
	deadline := time.Now().Add(exitWait)
	for {
		rec, ok, err := readExit(p.exit)
		if ok || err != nil || !stopped || !shimAlive(p) || time.Now().After(deadline) {
			return rec, ok, err
		}
		select {
		case <-ctx.Done():
			return rec, ok, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Exec runs argv in the running container and returns its exit code.
func (d *Driver) Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := checkID(id); err != nil {
		return -1, err
	}
	rt, env, err := d.execTarget(ctx, id, argv)
	if err != nil {
		return -1, err
	}
	code, err := rt.exec(ctx, id, env, argv, stdin, stdout, stderr)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return code, nil
}

// execTarget returns the runtime that runs container id, which must be
// running, and the environment a command exec'd into it gets besides the
// runtime's defaults: the container's PATH.
func (d *Driver) execTarget(ctx context.Context, id string, argv []string) (runc, []string, error) {
	if len(argv) == 0 {
		return runc{}, nil, fmt.Errorf("exec in container %s: empty command", id)
	}
	rt := d.runtimeOf(d.paths(id))
	st, found, err := rt.state(ctx, id)
	if err != nil {
		return runc{}, nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if !found || st.Status != "running" {
		return runc{}, nil, fmt.Errorf("exec in container %s: container is not running", id)
	}
	var env []string
	if spec, err := d.instances.ReadSpec(id); err == nil {
		if path, ok := lookupEnv(containerEnv(spec), "PATH"); ok {
			env = append(env, "PATH="+path)
		}
	}
	return rt, env, nil
}

// checkID refuses ids that are not safe as paths and runc ids.
func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("invalid container instance id %q: want lower-case letters, digits and '-'", id)
	}
	return nil
}

// instancePaths are the files of one instance.
type instancePaths struct {
	dir, spec, bundle, config, upper, work, rootfs string
	console, shimLog, shimPid, pidFile, exit       string
	runtime                                        string
}

func (d *Driver) instanceDir(id string) string { return d.instances.Path(id) }

func (d *Driver) paths(id string) instancePaths {
	dir := d.instanceDir(id)
	return instancePaths{
		dir:     dir,
		spec:    d.instances.SpecPath(id),
		bundle:  filepath.Join(dir, "bundle"),
		config:  filepath.Join(dir, "bundle", "config.json"),
		upper:   filepath.Join(dir, "upper"),
		work:    filepath.Join(dir, "work"),
		rootfs:  filepath.Join(dir, "rootfs"),
		console: filepath.Join(dir, "console.log"),
		shimLog: filepath.Join(dir, "shim.log"),
		shimPid: filepath.Join(dir, "shim.pid"),
		pidFile: filepath.Join(dir, "container.pid"),
		exit:    filepath.Join(dir, "exit.json"),
		runtime: filepath.Join(dir, "runtime"),
	}
}

// startedAt is runc's creation time, or the pid file's mtime.
func (d *Driver) startedAt(p instancePaths, st runcState) time.Time {
	if !st.Created.IsZero() {
		return st.Created
	}
	if fi, err := os.Stat(p.pidFile); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

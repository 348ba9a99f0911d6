package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
)

// Create fetches the image, makes the instance's disk overlay and seed,
// and records the spec. It starts nothing. Creating an instance that
// exists only makes a missing seed again.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := checkID(spec.ID); err != nil {
		return err
	}
	if err := d.checkSpec(spec); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	unlock := d.instLocks.Lock(spec.ID)
	defer unlock()
	p := d.paths(spec.ID)
	if fileExists(p.spec) {
		// Created before (a retry, or a crash after the spec was
		// written): the recorded spec is the instance.
		old, err := d.instances.ReadSpec(spec.ID)
		if err != nil {
			return fmt.Errorf("create vm %s: %w", spec.ID, err)
		}
		if err := d.ensureSeed(ctx, p, old); err != nil {
			return fmt.Errorf("create vm %s: %w", spec.ID, err)
		}
		return nil
	}
	if _, err := d.instances.Create(spec.ID); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	if err := d.prepareDisk(ctx, p, spec); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	if err := d.ensureSeed(ctx, p, spec); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	if err := d.initVolumes(spec); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	// spec.json last: it marks a complete Create.
	if err := d.instances.WriteSpec(spec); err != nil {
		return fmt.Errorf("create vm %s: %w", spec.ID, err)
	}
	d.log.Info("vm created", "id", spec.ID, "format", spec.Image.Format)
	return nil
}

// checkSpec refuses specs the driver cannot run, before anything is
// fetched or written.
func (d *Driver) checkSpec(spec driver.Spec) error {
	img := spec.Image
	switch img.Format {
	case api.FormatQCOW2, api.FormatRaw:
		if img.Disk == nil {
			return fmt.Errorf("image.disk: a %s image needs a disk", img.Format)
		}
	case api.FormatKernel:
		if img.Kernel == nil {
			return errors.New("image.kernel: a kernel image needs a kernel")
		}
	default:
		return fmt.Errorf("image.format %q: the vm driver runs qcow2, raw and kernel images", img.Format)
	}
	if img.Initrd != nil && img.Kernel == nil {
		return errors.New("image.initrd: an initrd needs a kernel")
	}
	if img.Architecture != "" && img.Architecture != d.arch {
		return fmt.Errorf("image.architecture: the image is for %s, this host runs %s", img.Architecture, d.arch)
	}
	if spec.Resources.VCPUs < 0 || spec.Resources.VCPUs > 255 {
		return fmt.Errorf("resources.vcpus %d: use 1 to 255", spec.Resources.VCPUs)
	}
	if spec.Resources.MemoryMiB < 16 {
		return fmt.Errorf("resources.memoryMiB %d: a VM needs at least 16 MiB", spec.Resources.MemoryMiB)
	}
	return checkNICs(spec.Interfaces)
}

// prepareDisk caches the image's blobs and makes the overlay.
func (d *Driver) prepareDisk(ctx context.Context, p instancePaths, spec driver.Spec) error {
	img := spec.Image
	if img.Disk != nil {
		format := diskFormat(img)
		base, err := d.images.Fetch(ctx, *img.Disk, d.checkBaseDisk(ctx, format))
		if err != nil {
			return err
		}
		if err := d.ensureOverlay(ctx, p, base, format, spec.Resources.DiskGiB); err != nil {
			return err
		}
	}
	for _, b := range []*api.Blob{img.Kernel, img.Initrd} {
		if b != nil {
			if _, err := d.images.Fetch(ctx, *b, nil); err != nil {
				return err
			}
		}
	}
	if img.Kernel != nil {
		// Decompress the kernel now, not on the first start.
		if _, err := d.pvhKernel(ctx, *img.Kernel); err != nil {
			d.log.Warn("kernel boots compressed", "id", spec.ID, "err", err)
		}
	}
	return nil
}

// Start boots a created or stopped VM and returns once QEMU runs it.
// Starting a running VM does nothing.
func (d *Driver) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	p := d.paths(id)
	spec, err := d.instances.ReadSpec(id)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start vm %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("start vm %s: %w", id, err)
	}
	if pid := livePid(p, id); pid != 0 {
		st, err := d.queryStatus(ctx, id)
		if err != nil || st.Status != "shutdown" {
			return nil // running
		}
		// The guest powered off and nobody noticed yet.
		if err := d.reap(ctx, p, id, pid); err != nil {
			return fmt.Errorf("start vm %s: %w", id, err)
		}
	}
	if err := d.launch(ctx, p, spec); err != nil {
		return fmt.Errorf("start vm %s: %w", id, err)
	}
	return nil
}

// launch starts QEMU for spec and records the run.
func (d *Driver) launch(ctx context.Context, p instancePaths, spec driver.Spec) error {
	id := spec.ID
	if spec.Image.Disk != nil && !fileExists(p.disk) {
		return fmt.Errorf("the instance's disk %s is missing", p.disk)
	}
	if err := d.prepareDisk(ctx, p, spec); err != nil { // the cache may have been pruned
		return err
	}
	if err := d.ensureSeed(ctx, p, spec); err != nil {
		return err
	}
	l, err := d.launchFor(ctx, p, spec)
	if err != nil {
		return err
	}
	taps, mtus, err := openTaps(spec.Interfaces)
	if err != nil {
		return err
	}
	defer closeAll(taps)
	l.mtus = mtus
	args, err := l.args()
	if err != nil {
		return err
	}
	for _, stale := range []string{p.exit, p.pidFile} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.RemoveAll(p.runDir); err != nil {
		return err
	}
	if err := os.MkdirAll(p.runDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.qemuLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s start (accel %s)\n", time.Now().UTC().Format(time.RFC3339), l.accelName())

	lctx, cancel := context.WithTimeout(ctx, launchTimeout)
	defer cancel()
	cmd := exec.CommandContext(lctx, d.cfg.QEMU, args...)
	cmd.ExtraFiles = taps
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	runErr := cmd.Run()
	pid := readPid(p.pidFile)
	if runErr != nil {
		if pid != 0 && isOurQEMU(pid, id) {
			syscall.Kill(pid, syscall.SIGKILL) // half-started: do not leave it
		}
		return fmt.Errorf("qemu: %w: %s", runErr, tailFile(p.qemuLog, 1024))
	}
	if pid == 0 || !isOurQEMU(pid, id) {
		return fmt.Errorf("qemu daemonized but its pid file names no running QEMU of this instance: %s", tailFile(p.qemuLog, 1024))
	}
	if err := instancedir.WriteJSON(p.run, runRecord{Pid: pid, StartedAt: time.Now().UTC()}); err != nil {
		return err
	}
	d.log.Info("vm started", "id", id, "pid", pid, "accel", l.accelName())
	return nil
}

// launchFor assembles the launch of spec.
func (d *Driver) launchFor(ctx context.Context, p instancePaths, spec driver.Spec) (launch, error) {
	l := launch{
		arch: d.arch, kvm: d.accel(ctx).kvm, machine: d.cfg.Machine, firmware: d.firmware(),
		id: spec.ID, vcpus: max(spec.Resources.VCPUs, 1), memMiB: spec.Resources.MemoryMiB,
		seed: p.seed, qmp: p.qmp, console: p.console, serial: p.serial, pidFile: p.pidFile, qemuLog: p.qemuLog,
	}
	vols, err := d.readVolumes(spec.ID)
	if err != nil {
		return l, err
	}
	if vols, err = secretsToFiles(d.instanceDir(spec.ID), vols); err != nil {
		return l, err
	}
	l.volumes = vols
	img := spec.Image
	if img.Disk != nil && !slices.ContainsFunc(vols, func(v attachedVolume) bool { return v.Boot }) {
		l.disk = p.disk
	}
	if img.Kernel != nil {
		var err error
		if l.kernel, err = d.images.Fetch(ctx, *img.Kernel, nil); err != nil {
			return l, err
		}
		if vmlinux, err := d.pvhKernel(ctx, *img.Kernel); err != nil {
			d.log.Warn("kernel boots compressed", "id", spec.ID, "err", err)
		} else if vmlinux != "" {
			l.kernel = vmlinux
		}
		if img.Initrd != nil {
			if l.initrd, err = d.images.Fetch(ctx, *img.Initrd, nil); err != nil {
				return l, err
			}
		}
		l.cmdline = img.Cmdline
	}
	for _, n := range spec.Interfaces {
		l.macs = append(l.macs, n.MAC)
	}
	return l, nil
}

func (l launch) accelName() string {
	if l.kvm {
		return "kvm"
	}
	return "tcg"
}

// firmware returns the UEFI image for aarch64 disks, or "".
func (d *Driver) firmware() string {
	if d.cfg.Firmware != "" || d.arch != "arm64" {
		return d.cfg.Firmware
	}
	for _, f := range []string{"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", "/usr/share/AAVMF/AAVMF_CODE.fd"} {
		if fileExists(f) {
			return f
		}
	}
	return ""
}

// Stop asks the guest to power off (ACPI power button), waits up to
// timeout, then ends QEMU (QMP quit, SIGKILL). The disk is kept.
// Stopping a stopped or unknown VM does nothing.
func (d *Driver) Stop(ctx context.Context, id string, timeout time.Duration) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	if err := d.stop(ctx, id, timeout); err != nil {
		return fmt.Errorf("stop vm %s: %w", id, err)
	}
	return nil
}

// stop is Stop with the instance lock held.
func (d *Driver) stop(ctx context.Context, id string, timeout time.Duration) error {
	p := d.paths(id)
	pid := livePid(p, id)
	if pid == 0 {
		return nil
	}
	if timeout > 0 {
		if st, err := d.queryStatus(ctx, id); err == nil && st.Status != "shutdown" && st.Running {
			if err := d.qmpExecute(ctx, id, "system_powerdown", nil); err != nil {
				d.log.Warn("power button", "id", id, "err", err)
			}
		}
		deadline := time.Now().Add(timeout)
		for isOurQEMU(pid, id) && time.Now().Before(deadline) && ctx.Err() == nil {
			if st, err := d.queryStatus(ctx, id); err == nil && st.Status == "shutdown" {
				return d.reap(ctx, p, id, pid)
			}
			sleep(ctx, 100*time.Millisecond)
		}
		if !isOurQEMU(pid, id) {
			return nil
		}
		d.log.Info("guest did not power off, ending QEMU", "id", id, "timeout", timeout)
	}
	return d.kill(ctx, id, pid)
}

// reap records that the guest powered off by itself (exit code 0) and
// ends its paused QEMU.
func (d *Driver) reap(ctx context.Context, p instancePaths, id string, pid int) error {
	if err := instancedir.WriteJSON(p.exit, exitRecord{ExitCode: 0, FinishedAt: time.Now().UTC()}); err != nil {
		return err
	}
	d.log.Info("guest powered off", "id", id)
	return d.kill(ctx, id, pid)
}

// kill ends QEMU: QMP quit, then SIGKILL, waiting for it to go.
func (d *Driver) kill(ctx context.Context, id string, pid int) error {
	gone := func() bool { return !isOurQEMU(pid, id) }
	if err := d.qmpExecute(ctx, id, "quit", nil); err == nil && waitFor(ctx, killTimeout, gone) {
		return nil
	}
	if gone() {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill qemu %d: %w", pid, err)
	}
	if !waitFor(ctx, killTimeout, gone) {
		return fmt.Errorf("qemu %d still running %s after SIGKILL", pid, killTimeout)
	}
	return nil
}

// Reboot resets the running VM (QMP system_reset): the guest boots again
// in the same QEMU process.
func (d *Driver) Reboot(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	if livePid(d.paths(id), id) == 0 {
		return fmt.Errorf("reboot vm %s: not running", id)
	}
	if err := d.qmpExecute(ctx, id, "system_reset", nil); err != nil {
		return fmt.Errorf("reboot vm %s: %w", id, err)
	}
	d.log.Info("vm reset", "id", id)
	return nil
}

// Delete ends QEMU if it runs and removes the instance's files and
// sockets. Deleting an unknown id does nothing. Cached images stay.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if checkID(id) != nil {
		return nil // never created here (the agent deletes from every driver)
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	p := d.paths(id)
	existed := fileExists(p.dir) || fileExists(p.runDir)
	if pid := livePid(p, id); pid != 0 {
		if err := d.kill(ctx, id, pid); err != nil {
			return fmt.Errorf("delete vm %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(p.runDir); err != nil {
		return fmt.Errorf("delete vm %s: %w", id, err)
	}
	if err := d.instances.Remove(id); err != nil {
		return fmt.Errorf("delete vm %s: %w", id, err)
	}
	if existed {
		d.log.Info("vm deleted", "id", id)
	}
	return nil
}

// Inspect returns the VM's state: running while its QEMU runs the guest;
// stopped once the guest powered off (exit code 0) or QEMU ended (no exit
// code); created if it never ran. A powered-off guest's QEMU is ended
// here.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	if err := checkID(id); err != nil {
		return driver.Status{}, err
	}
	st, off, err := d.observe(ctx, id)
	if err != nil || !off {
		return st, err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	p := d.paths(id)
	if pid := livePid(p, id); pid != 0 {
		if qs, err := d.queryStatus(ctx, id); err == nil && qs.Status == "shutdown" {
			if err := d.reap(ctx, p, id, pid); err != nil {
				return driver.Status{}, fmt.Errorf("inspect vm %s: %w", id, err)
			}
		}
	}
	st, _, err = d.observe(ctx, id)
	return st, err
}

// observe reads the VM's state without changing anything; off reports a
// guest that powered off while its QEMU still runs.
func (d *Driver) observe(ctx context.Context, id string) (st driver.Status, off bool, err error) {
	p := d.paths(id)
	if !fileExists(p.spec) {
		return st, false, driver.ErrNotFound
	}
	run, hasRun, err := readRun(p.run)
	if err != nil {
		return st, false, fmt.Errorf("inspect vm %s: %w", id, err)
	}
	if pid := livePid(p, id); pid != 0 {
		started := run.StartedAt
		if !hasRun || run.Pid != pid {
			started = modTime(p.pidFile)
		}
		if qs, err := d.queryStatus(ctx, id); err == nil && qs.Status == "shutdown" {
			return driver.Status{State: driver.StateStopped, Pid: pid, StartedAt: started,
				FinishedAt: time.Now().UTC(), HasExitCode: true}, true, nil
		}
		// A monitor that does not answer (busy, or QEMU exiting) leaves
		// the process as the evidence: running.
		return driver.Status{State: driver.StateRunning, Pid: pid, StartedAt: started}, false, nil
	}
	var ex exitRecord
	hasExit, err := readJSON(p.exit, &ex)
	if err != nil {
		return st, false, fmt.Errorf("inspect vm %s: %w", id, err)
	}
	switch {
	case hasExit:
		return driver.Status{State: driver.StateStopped, StartedAt: run.StartedAt, FinishedAt: ex.FinishedAt,
			ExitCode: ex.ExitCode, HasExitCode: true}, false, nil
	case hasRun:
		// It ran and ended without the guest powering off: killed,
		// crashed, or stopped forcibly.
		return driver.Status{State: driver.StateStopped, StartedAt: run.StartedAt}, false, nil
	}
	return driver.Status{State: driver.StateCreated}, false, nil
}

// runRecord is run.json: the last start.
type runRecord struct {
	Pid       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`
}

// exitRecord is exit.json: the guest powered off.
type exitRecord struct {
	ExitCode   int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
}

func readRun(path string) (runRecord, bool, error) {
	var r runRecord
	ok, err := readJSON(path, &r)
	return r, ok, err
}

// readJSON decodes path into v; a missing file is (false, nil).
func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return true, nil
}

func modTime(path string) time.Time {
	if fi, err := os.Stat(path); err == nil {
		return fi.ModTime().UTC()
	}
	return time.Time{}
}

// waitFor polls cond until it holds (true), timeout passes or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

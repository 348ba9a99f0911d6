package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
)

// Start mounts the instance's root filesystem and starts its container
// under a new shim. It returns once the runtime reports it running,
// or once the shim recorded that it already exited (Inspect then shows
// the exit code). Starting a running container does nothing.
func (d *Driver) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	p := d.paths(id)
	spec, err := d.instances.ReadSpec(id)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start container %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	var st runcState
	found := false
	rt := d.runtimeOf(p)
	if rt.mayHold(id) {
		if st, found, err = rt.state(ctx, id); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	}
	if found && (st.Status == "running" || st.Status == "paused") {
		return nil
	}
	// The previous run's shim may still be recording its exit; then
	// clear whatever runc still holds of it.
	if !d.waitFor(ctx, shimTimeout, func() bool { return !shimAlive(p) }) {
		return fmt.Errorf("start container %s: the previous shim is still running", id)
	}
	if found {
		if err := rt.forceDelete(ctx, id); err != nil {
			return fmt.Errorf("start container %s: clear old runtime state: %w", id, err)
		}
	}

	// An instance keeps the id mapping it was created with.
	ids, err := d.instanceIDMap(ctx, p, spec)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	layers, err := d.ensureLayers(ctx, spec.Image.Layers, ids)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if err := mountOverlay(p, lowerDirs(layers)); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	vols, err := d.volumesOf(spec)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	spec.Volumes = vols
	if !fileExists(p.config) {
		if err := d.prepareInstanceDirs(id, ids); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
		if err := d.writeBundle(spec, layers, ids); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	} else if len(vols) > 0 || fileExists(d.volumesPath(id)) {
		// The volumes may have changed since the bundle was written.
		if err := d.writeBundle(spec, layers, ids); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	}
	if err := mountVolumes(ctx, p, vols, ids); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if spec.NetNS != "" {
		if err := prepareJoinedNetNS(spec.NetNS, ids); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	}
	for _, stale := range []string{p.exit, p.pidFile} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	}
	shimDone, err := d.startShim(id, p)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if err := d.waitStarted(ctx, id, p, shimDone); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	d.refillStandby() // for the next Start
	d.log.Info("container started", "id", id)
	return nil
}

// waitStarted waits until the container runs or has already exited.
func (d *Driver) waitStarted(ctx context.Context, id string, p instancePaths, shimDone <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// Wake as soon as the runtime writes the pid file or the shim the exit
	// record; the timer only backs inotify up.
	var changed <-chan struct{}
	if n, err := notifyDir(p.dir); err == nil {
		defer n.Close()
		changed = n.C
	}
	delay := time.Millisecond
	for {
		rec, exited, err := readExit(p.exit)
		if err != nil {
			return err
		}
		if exited {
			if rec.Error != "" {
				return errors.New(rec.Error) // it quotes runc's message
			}
			return nil
		}
		if fileExists(p.pidFile) {
			// runc run writes the pid file (atomically) only once the
			// container's process runs the command; if it has ended
			// since, the exit record tells the agent.
			return nil
		}
		select {
		case <-shimDone:
			if _, exited, _ := readExit(p.exit); exited {
				continue
			}
			return fmt.Errorf("the shim exited without recording an exit%s", d.logTails(p))
		case <-ctx.Done():
			return fmt.Errorf("container did not start: %w%s", ctx.Err(), d.logTails(p))
		case <-changed:
		case <-time.After(delay):
		}
		if changed != nil {
			delay = min(2*delay, 50*time.Millisecond)
		} else {
			delay = min(2*delay, 5*time.Millisecond)
		}
	}
}

// logTails returns the ends of the console and shim logs for an error.
func (d *Driver) logTails(p instancePaths) string {
	var s string
	if t := tail(p.console, 1024); t != "" {
		s += "; console log: " + t
	}
	if t := tail(p.shimLog, 1024); t != "" {
		s += "; shim log: " + t
	}
	return s
}

// Stop sends the container SIGTERM, SIGKILL after timeout, waits for the
// shim to record the exit and unmounts the root filesystem. The writable
// layer is kept. Stopping a stopped or unknown container does nothing.
func (d *Driver) Stop(ctx context.Context, id string, timeout time.Duration) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	if err := d.stop(ctx, id, timeout); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// stop is Stop with the instance lock held.
func (d *Driver) stop(ctx context.Context, id string, timeout time.Duration) error {
	p := d.paths(id)
	rt := d.runtimeOf(p)
	st, found, err := rt.state(ctx, id)
	if err != nil {
		return err
	}
	if found && (st.Status == "running" || st.Status == "paused" || st.Status == "created") {
		stopped := func() bool {
			st, found, err := rt.state(ctx, id)
			return err == nil && (!found || st.Status == "stopped")
		}
		if err := rt.kill(ctx, id, "TERM"); err != nil && !isNotRunning(err) && !isNotExist(err) {
			return err
		}
		if !d.waitFor(ctx, timeout, stopped) {
			d.log.Info("container ignored SIGTERM, killing", "id", id, "timeout", timeout)
			if err := rt.kill(ctx, id, "KILL"); err != nil && !isNotRunning(err) && !isNotExist(err) {
				return err
			}
			if !d.waitFor(ctx, killTimeout, stopped) {
				return fmt.Errorf("container still running %s after SIGKILL", killTimeout)
			}
		}
	}
	// The shim records the exit and deletes the runc container; if it is
	// gone (killed, or the host rebooted), do its cleanup here.
	if !d.waitFor(ctx, shimTimeout, func() bool { return !shimAlive(p) }) {
		d.log.Warn("shim still running after its container stopped", "id", id)
	}
	if err := rt.forceDelete(ctx, id); err != nil {
		return err
	}
	if err := unmountVolumes(p); err != nil {
		return err
	}
	return unmountAll(p.rootfs)
}

// Delete stops the container if needed and removes everything it left:
// runc state, the mount, cgroups and the instance directory. Deleting an
// unknown id does nothing. Cached layers stay (see PruneLayers).
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	p := d.paths(id)
	existed := fileExists(p.dir)
	if err := d.stop(ctx, id, deleteStopTimeout); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	// Cgroups go once their last process has; runc usually removes them.
	var cgErr error
	d.waitFor(ctx, killTimeout, func() bool {
		cgErr = removeCgroups(id)
		return cgErr == nil
	})
	if cgErr != nil {
		return fmt.Errorf("delete container %s: %w", id, cgErr)
	}
	// Never remove files through a mount: stop unmounted it, check again.
	if mounted, err := isMounted(p.rootfs); err != nil || mounted {
		return fmt.Errorf("delete container %s: root filesystem still mounted (%v)", id, err)
	}
	if err := d.instances.Remove(id); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if existed {
		d.log.Info("container deleted", "id", id)
	}
	return nil
}

// waitFor polls cond every few milliseconds until it holds (true), the
// timeout passes or ctx ends (false).
func (d *Driver) waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

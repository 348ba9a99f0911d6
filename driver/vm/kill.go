package vm

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ouroboros-cloud/ouro/driver"
)

// Kill implements driver.Killer: it sends SIGKILL to the VM's QEMU, as if
// it crashed. The guest gets no chance to shut down.
func (d *Driver) Kill(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	pid := livePid(d.paths(id), id)
	if pid == 0 {
		return driver.ErrNotRunning
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return driver.ErrNotRunning
		}
		return fmt.Errorf("kill vm %s (qemu %d): %w", id, pid, err)
	}
	d.log.Info("vm killed", "id", id, "pid", pid)
	return nil
}

package container

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ouroboros-cloud/ouro/driver"
)

// Kill implements driver.Killer: it sends SIGKILL to the container's init
// process, as if it crashed.
func (d *Driver) Kill(ctx context.Context, id string) error {
	st, err := d.Inspect(ctx, id)
	if err != nil {
		return err
	}
	if st.State != driver.StateRunning || st.Pid <= 1 {
		return driver.ErrNotRunning
	}
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return driver.ErrNotRunning
		}
		return fmt.Errorf("kill container %s (pid %d): %w", id, st.Pid, err)
	}
	d.log.Info("container killed", "id", id, "pid", st.Pid)
	return nil
}

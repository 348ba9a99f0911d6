package vm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
)

// livePid returns the pid of the instance's running QEMU, from its pid
// file or the last run record, or 0.
func livePid(p instancePaths, id string) int {
	run, _, _ := readRun(p.run)
	for _, pid := range []int{readPid(p.pidFile), run.Pid} {
		if pid > 0 && isOurQEMU(pid, id) {
			return pid
		}
	}
	return 0
}

// readPid reads a pid file; 0 when missing or unreadable.
func readPid(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// isOurQEMU reports whether pid is a live QEMU of instance id: its
// command line is a qemu-system program with "-name ouro-<id>". A recycled
// pid or an exited process (a zombie has an empty command line) is not.
func isOurQEMU(pid int, id string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(data) == 0 {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	if !strings.HasPrefix(filepath.Base(args[0]), "qemu-system") {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "-name" && args[i+1] == "ouro-"+id {
			return true
		}
	}
	return false
}

// withQMP runs fn in a QMP session with the instance's QEMU. Sessions on
// one monitor are serialised (QEMU serves one client at a time).
func (d *Driver) withQMP(ctx context.Context, id string, fn func(ctx context.Context, c *qmpConn) error) error {
	unlock := d.qmpLocks.Lock(id)
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	c, err := dialQMP(ctx, d.paths(id).qmp)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// queryStatus asks QEMU for the VM's run state.
func (d *Driver) queryStatus(ctx context.Context, id string) (qmpStatus, error) {
	var st qmpStatus
	err := d.withQMP(ctx, id, func(ctx context.Context, c *qmpConn) error {
		return c.execute(ctx, "query-status", nil, &st)
	})
	return st, err
}

// qmpExecute runs one command without arguments' reply.
func (d *Driver) qmpExecute(ctx context.Context, id, command string, args any) error {
	return d.withQMP(ctx, id, func(ctx context.Context, c *qmpConn) error {
		return c.execute(ctx, command, args, nil)
	})
}

// Console connects to the VM's serial console: reads return what the
// guest writes (the serial log keeps it too), writes are its input.
// QEMU serves one console client at a time; a second waits until the
// first closes.
func (d *Driver) Console(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	p := d.paths(id)
	if !fileExists(p.spec) {
		return nil, fmt.Errorf("console of vm %s: %w", id, driver.ErrNotFound)
	}
	if livePid(p, id) == 0 {
		return nil, fmt.Errorf("console of vm %s: not running", id)
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", p.console)
	if err != nil {
		return nil, fmt.Errorf("console of vm %s: %w", id, err)
	}
	return conn, nil
}

// CPUTime returns the CPU time the VM's QEMU process has used (all its
// threads: vCPUs, I/O and emulation), from /proc/<pid>/stat.
func (d *Driver) CPUTime(ctx context.Context, id string) (time.Duration, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	pid := livePid(d.paths(id), id)
	if pid == 0 {
		return 0, fmt.Errorf("cpu time of vm %s: not running", id)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of vm %s: %w", id, err)
	}
	return parseCPUTime(string(data))
}

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture).
const userHZ = 100

// parseCPUTime returns utime+stime of a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so
// fields are counted from the last ')'.
func parseCPUTime(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// tailFile returns the last n bytes of a file, trimmed, for errors.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(fi.Size()-n, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	return strings.TrimSpace(string(data))
}

package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// A shim is the ouro binary run again, and starting it (exec, then the
// initialisation of every package the binary links) costs tens of
// milliseconds on a busy host, on the way from Start to running. So the
// driver keeps one shim started ahead, on standby: it waits on a pipe
// for the instance it is to run, and goes on as any shim once told.
//
//	driver ──fork/exec (ahead of time)──▶ shim --standby <Dir>   (reads stdin)
//	Start ──{"dir","id","runc","runcRoot"}, close──▶ shim: logs to <dir>/shim.log,
//	                                                       runs the container
//	driver gone (pipe closed, nothing written) ──▶ the standby shim exits
//
// The first Start of a driver starts its shim as before, and leaves one on
// standby for the next. Since a standby shim's command line does not name
// its instance, shim.pid records the shim's pid with its start time, which
// tells it from a process that got the pid since (shimAlive).

// assignment tells a standby shim which container to run.
type assignment struct {
	Dir      string `json:"dir"`
	ID       string `json:"id"`
	Runc     string `json:"runc"`
	RuncRoot string `json:"runcRoot,omitempty"`
}

// standbyShim is a shim started ahead and waiting on in for its
// assignment.
type standbyShim struct {
	cmd  *exec.Cmd
	in   *os.File // the write end of its stdin
	done chan struct{}
}

// standbyPool holds at most one standby shim.
type standbyPool struct {
	mu    sync.Mutex
	ready *standbyShim
	// starting is true while a standby shim is being started.
	starting bool
}

// takeStandby returns the standby shim if one lives, else nil.
func (d *Driver) takeStandby() *standbyShim {
	d.standby.mu.Lock()
	s := d.standby.ready
	d.standby.ready = nil
	d.standby.mu.Unlock()
	if s == nil {
		return nil
	}
	select {
	case <-s.done: // it died meanwhile
		s.in.Close()
		return nil
	default:
		return s
	}
}

// refillStandby starts a standby shim in the background unless one is
// there or being started.
func (d *Driver) refillStandby() {
	d.standby.mu.Lock()
	if d.standby.ready != nil || d.standby.starting {
		d.standby.mu.Unlock()
		return
	}
	d.standby.starting = true
	d.standby.mu.Unlock()
	go func() {
		s, err := d.spawnStandby()
		if err != nil {
			d.log.Warn("start a standby shim", "err", err)
		}
		d.standby.mu.Lock()
		d.standby.ready, d.standby.starting = s, false
		d.standby.mu.Unlock()
	}()
}

// spawnStandby starts a shim that waits on its stdin for an assignment,
// detached in its own session. Its command line names the driver's
// directory (ps shows whose it is).
func (d *Driver) spawnStandby() (*standbyShim, error) {
	r, w, err := os.Pipe() // close-on-exec: no other child holds w
	if err != nil {
		return nil, err
	}
	defer r.Close()
	args := append([]string{}, d.cfg.ShimCommand[1:]...)
	args = append(args, "--standby", d.cfg.Dir)
	cmd := exec.Command(d.cfg.ShimCommand[0], args...)
	cmd.Env = append(os.Environ(), d.cfg.ShimEnv...)
	cmd.Stdin = r // stdout, stderr: /dev/null until assigned
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	s := &standbyShim{cmd: cmd, in: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // reap it if it ends while we live
		close(s.done)
	}()
	return s, nil
}

// assign hands the instance of p to the standby shim s and records its
// pid. On error s is ended.
func (d *Driver) assign(s *standbyShim, id string, p instancePaths, runcPath string) error {
	a := assignment{Dir: p.dir, ID: id, Runc: runcPath, RuncRoot: d.cfg.RuntimeRoot}
	data, err := json.Marshal(a)
	if err == nil {
		_, err = s.in.Write(append(data, '\n'))
	}
	if cerr := s.in.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.cmd.Process.Kill()
		return fmt.Errorf("assign a standby shim: %w", err)
	}
	recordShimPid(d, id, p, s.cmd.Process.Pid)
	return nil
}

// recordShimPid writes the shim's pid and start time to p.shimPid.
func recordShimPid(d *Driver, id string, p instancePaths, pid int) {
	rec := strconv.Itoa(pid)
	if start, ok := procStartTime(pid); ok {
		rec += " " + start
	}
	if err := atomicfile.WriteFile(p.shimPid, []byte(rec+"\n"), 0o600); err != nil {
		d.log.Warn("record shim pid", "id", id, "err", err)
	}
}

// procStartTime returns the start time of process pid (field 22 of
// /proc/<pid>/stat, in clock ticks since boot) and whether it runs (a
// zombie does not).
func procStartTime(pid int) (string, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", false
	}
	// pid (comm) S ppid ...: fields from the state on, after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	return f[19], true
}

// readAssignment reads a standby shim's assignment from r and checks
// that its directory is an instance directory of the driver directory
// root. io.EOF means the driver closed the pipe without one.
func readAssignment(r io.Reader, root string) (assignment, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return assignment{}, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return assignment{}, io.EOF
	}
	var a assignment
	if err := json.Unmarshal(data, &a); err != nil {
		return assignment{}, fmt.Errorf("read assignment: %w", err)
	}
	if checkID(a.ID) != nil || a.Runc == "" {
		return assignment{}, errors.New("read assignment: bad id or runtime")
	}
	if filepath.Clean(a.Dir) != filepath.Join(root, "instances", a.ID) {
		return assignment{}, fmt.Errorf("read assignment: %s is not the directory of instance %s under %s", a.Dir, a.ID, root)
	}
	return a, nil
}

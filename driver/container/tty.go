package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ouroboros-cloud/ouro/driver"
)

// A command on a terminal (ExecTTY):
//
//	agent ──▶ tty-exec helper (subreaper, own session)
//	  ▲          └─▶ runc exec --detach --console-socket S --process P ──▶ command
//	  │                   │ sends the pty master over S (SCM_RIGHTS)
//	  └── master ◀────────┘
//
// runc hands the terminal's master to a console socket only when it
// detaches, and then the command outlives runc with no parent that could
// learn its exit code. The helper (the shim's binary, `container-shim
// tty-exec`) is a child subreaper: the orphaned command becomes its
// child, and it reports the command's pid, then its exit code, as JSON
// lines on its standard output. crun is run the same way. The process
// (P) is the container's own with the command, a terminal and its size.

// Bounds of a command on a terminal.
const (
	// ttyHangupGrace is how long a closed terminal's command has to end
	// after its hangup before its session is killed.
	ttyHangupGrace = 2 * time.Second
	// ttyTerm is the TERM a command on a terminal gets (the web
	// console's xterm.js and most local terminals understand it).
	ttyTerm = "xterm-256color"
)

// ttyReport is one line the helper writes: the command's pid once it
// runs, then its exit code; or an error.
type ttyReport struct {
	Pid      int    `json:"pid,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"`
	// Runtime tells that the runtime refused to start the command.
	Runtime bool `json:"runtime,omitempty"`
}

// err is the report's error, ErrExecStart when the runtime refused.
func (r ttyReport) err() error {
	if r.Runtime {
		return fmt.Errorf("%w: %s", driver.ErrExecStart, r.Error)
	}
	return errors.New(r.Error)
}

// ExecTTY runs argv in the running container on a new pseudo-terminal
// of size, as the container's own process runs (its user, capabilities,
// environment, no_new_privs) with TERM=xterm-256color. ctx bounds the
// start.
func (d *Driver) ExecTTY(ctx context.Context, id string, argv []string, size driver.TermSize) (driver.TTY, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	rt, _, err := d.execTarget(ctx, id, argv)
	if err != nil {
		return nil, err
	}
	proc, err := ttyProcessSpec(d.paths(id), argv, size)
	if err != nil {
		return nil, fmt.Errorf("exec on a terminal in container %s: %w", id, err)
	}
	t, err := d.startTTY(ctx, rt, id, proc, size)
	if err != nil {
		return nil, fmt.Errorf("exec on a terminal in container %s: %w", id, err)
	}
	return t, nil
}

// ttyProcessSpec is the process a command on a terminal runs as: the
// container's, which runc exec starts from without --process too, with
// argv, TERM, a terminal and its first size. The runtime starts the
// command right after it sends the terminal, too soon for the agent to
// size it first, so the size is in the process: runc applies it before
// the command runs. crun (1.8) does not for exec: the agent sizes the
// terminal on receipt, and a command that asks for its size in its
// first moments (a bare `stty size`) may find 0x0; a shell, or anything
// that waits for input, sees the size (an interactive program also gets
// SIGWINCH).
func ttyProcessSpec(p instancePaths, argv []string, size driver.TermSize) ([]byte, error) {
	data, err := os.ReadFile(p.config)
	if err != nil {
		return nil, fmt.Errorf("read the container's process: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("read the container's process: %s: no process (%v)", p.config, err)
	}
	proc := *spec.Process
	proc.Args = argv
	proc.Env = nil
	for _, e := range spec.Process.Env {
		if !strings.HasPrefix(e, "TERM=") {
			proc.Env = append(proc.Env, e)
		}
	}
	proc.Env = append(proc.Env, "TERM="+ttyTerm)
	proc.Terminal = true
	proc.NoNewPrivileges = true
	proc.ConsoleSize = nil
	if size.Rows > 0 && size.Cols > 0 {
		proc.ConsoleSize = &specs.Box{Height: uint(size.Rows), Width: uint(size.Cols)}
	}
	out, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("encode the process: %w", err)
	}
	return out, nil
}

// startTTY starts the helper and returns once the runtime has sent the
// terminal's master and the command runs.
func (d *Driver) startTTY(ctx context.Context, rt runc, id string, proc []byte, size driver.TermSize) (*ttyProcess, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// A short directory: a socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "ouro-tty-")
	if err != nil {
		return nil, fmt.Errorf("console socket directory: %w", err)
	}
	defer os.RemoveAll(dir)
	sock, pidFile, procFile := filepath.Join(dir, "console.sock"), filepath.Join(dir, "pid"), filepath.Join(dir, "process.json")
	if err := os.WriteFile(procFile, proc, 0o600); err != nil {
		return nil, fmt.Errorf("write the process: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer l.Close()

	rtArgs := []string{"exec", "--detach", "--console-socket", sock, "--pid-file", pidFile, "--process", procFile, id}
	args := append([]string{}, d.cfg.ShimCommand[1:]...)
	args = append(args, "tty-exec", "--pid-file", pidFile, "--", rt.path)
	args = append(args, rt.args(rtArgs...)...)
	cmd := exec.Command(d.cfg.ShimCommand[0], args...)
	cmd.Env = append(os.Environ(), d.cfg.ShimEnv...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("helper output: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start helper: %w", err)
	}
	t := &ttyProcess{helper: cmd, done: make(chan struct{})}
	reports := make(chan ttyReport, 2)
	go t.follow(stdout, reports)

	type accepted struct {
		master *os.File
		err    error
	}
	got := make(chan accepted, 1)
	go func() {
		m, err := acceptMaster(l, size)
		got <- accepted{m, err}
	}()
	// abort stops the helper, hangs up a terminal already received and
	// closes one acceptMaster may still bring.
	abort := func(err error) (*ttyProcess, error) {
		l.Close()
		if t.master != nil {
			t.master.Close()
		}
		cmd.Process.Kill()
		<-t.done
		if got != nil {
			go func(got <-chan accepted) {
				if a := <-got; a.master != nil {
					a.master.Close()
				}
			}(got)
		}
		return nil, err
	}
	// The runtime sends the master, then the helper reports the pid once
	// the runtime has exited; the two arrive here in either order.
	for t.master == nil || t.pid == 0 {
		select {
		case a := <-got:
			got = nil
			if a.err != nil {
				// The runtime may have failed before it connected: the
				// helper's report says why.
				return abort(firstError(reports, time.Second, a.err))
			}
			t.master = a.master
		case r, ok := <-reports:
			switch {
			case !ok:
				reports = nil
				if t.pid == 0 {
					return abort(t.err)
				}
			case r.Error != "":
				return abort(r.err())
			default:
				t.pid = r.Pid
				t.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", r.Pid))
			}
		case <-ctx.Done():
			return abort(fmt.Errorf("wait for the command to start: %w", ctx.Err()))
		}
	}
	return t, nil
}

// acceptMaster accepts the runtime's connection on the console socket
// and receives the terminal's master from it, sized at once. The master
// is non-blocking, so closing it ends a pending Read.
func acceptMaster(l *net.UnixListener, size driver.TermSize) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept on the console socket: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(startTimeout))
	buf := make([]byte, 4096) // the terminal's name
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive the terminal: no file in the message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive the terminal: want one file (%v)", err)
	}
	if size.Rows > 0 && size.Cols > 0 {
		ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
		if err := unix.IoctlSetWinsize(fds[0], unix.TIOCSWINSZ, ws); err != nil {
			unix.Close(fds[0])
			return nil, fmt.Errorf("size the terminal: %w", err)
		}
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// ttyProcess is a command running on a terminal whose master the agent
// holds.
type ttyProcess struct {
	master *os.File
	pid    int // in the host's pid namespace; the session's id
	// pidNS names the command's pid namespace (the container's): only
	// processes in it are killed with its session.
	pidNS  string
	helper *exec.Cmd

	// done is closed when the helper has ended; code and err are then
	// the command's result.
	done chan struct{}
	code int
	err  error

	closeOnce sync.Once
}

var _ driver.TTY = (*ttyProcess)(nil)

// follow passes the helper's reports to reports until its exit code,
// which it keeps in t.code and t.err, then closes reports, reaps the
// helper and closes t.done.
func (t *ttyProcess) follow(stdout io.Reader, reports chan<- ttyReport) {
	defer close(t.done)
	t.code, t.err = -1, errors.New("the helper ended without reporting an exit code")
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var r ttyReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.err = fmt.Errorf("helper said %q: %w", sc.Text(), err)
			break
		}
		if r.ExitCode != nil {
			t.code, t.err = *r.ExitCode, nil
			break
		}
		reports <- r // at most a pid and an error: the buffer holds them
		if r.Error != "" {
			t.err = r.err()
			break
		}
	}
	close(reports)
	io.Copy(io.Discard, stdout)
	t.helper.Wait()
}

// firstError returns the first error reported within wait, or err.
func firstError(reports <-chan ttyReport, wait time.Duration, err error) error {
	timeout := time.After(wait)
	for {
		select {
		case r, ok := <-reports:
			if !ok {
				return err
			}
			if r.Error != "" {
				return r.err()
			}
		case <-timeout:
			return err
		}
	}
}

// Read returns the command's output; io.EOF once nothing holds the
// terminal any more.
func (t *ttyProcess) Read(p []byte) (int, error) {
	n, err := t.master.Read(p)
	if errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

// Write types p at the command.
func (t *ttyProcess) Write(p []byte) (int, error) { return t.master.Write(p) }

// Resize sets the terminal's size.
func (t *ttyProcess) Resize(size driver.TermSize) error {
	raw, err := t.master.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	var ioctlErr error
	err = raw.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	})
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

// Wait returns the command's exit code once it has ended.
func (t *ttyProcess) Wait() (int, error) {
	<-t.done
	return t.code, t.err
}

// Close hangs up the terminal (the command gets SIGHUP); whatever of its
// session still runs after ttyHangupGrace is killed. It returns when the
// command has ended.
func (t *ttyProcess) Close() error {
	t.closeOnce.Do(func() {
		t.master.Close()
		select {
		case <-t.done:
		case <-time.After(ttyHangupGrace):
			killSession(t.pid, t.pidNS)
			select {
			case <-t.done:
			case <-time.After(killTimeout):
				t.helper.Process.Kill()
				<-t.done
			}
		}
		// Processes the command left behind in its session (jobs it
		// put in the background) go too.
		killSession(t.pid, t.pidNS)
	})
	return nil
}

// killSession sends SIGKILL to every process of session sid (host pids)
// in the pid namespace ns, which a recycled sid on the host is not.
func killSession(sid int, ns string) {
	if sid <= 1 || ns == "" {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := sessionOf(pid); !ok || s != sid {
			continue
		}
		if pns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && pns == ns {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sessionOf returns the session id of process pid from /proc/pid/stat.
func sessionOf(pid int) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 4 {
		return 0, false
	}
	sid, err := strconv.Atoi(f[3])
	return sid, err == nil
}

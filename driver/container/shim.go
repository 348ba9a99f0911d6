package container

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver/instancedir"
)

// The shim keeps a container's `runc run` (or `crun run`) company:
//
//	agent ──Start──▶ shim (own session) ──▶ runc run (foreground) ──▶ container
//	                  │ waits for the runtime, then
//	                  ├─ writes exit.json {"exitCode","finishedAt"}
//	                  └─ runs runc delete --force
//
// It is started detached, so the container outlives the agent, and it is
// the only process that can learn the exit code (runc run returns it).

// ShimMain is the shim's main function: `ouro container-shim --dir
// <instance dir> --id <id> --runc <runtime path> [--runc-root <dir>]`,
// where the runtime is runc or crun, or `ouro container-shim --standby
// <driver dir>`, which reads those as JSON from stdin (standby.go). It
// returns the process exit code. `ouro container-shim tty-exec ...` is
// the helper of a command on a terminal instead (ExecTTY).
func ShimMain(args []string) int {
	if len(args) > 0 && args[0] == "tty-exec" {
		return ttyExecMain(args[1:])
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "container-shim")
	fs := flag.NewFlagSet("container-shim", flag.ContinueOnError)
	dir := fs.String("dir", "", "instance directory")
	id := fs.String("id", "", "container id")
	runcPath := fs.String("runc", "runc", "OCI runtime program (runc or crun)")
	runcRoot := fs.String("runc-root", "", "the runtime's state directory (--root)")
	standby := fs.String("standby", "", "wait on stdin for the instance to run, one of this driver directory's")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *standby != "" {
		a, err := readAssignment(os.Stdin, *standby)
		if errors.Is(err, io.EOF) {
			return 0 // the driver went without giving work
		}
		if err != nil {
			log.Error("standby shim", "err", err)
			return 2
		}
		if err := logTo(filepath.Join(a.Dir, "shim.log")); err != nil {
			log.Error("standby shim", "err", err)
			return 1
		}
		*dir, *id, *runcPath, *runcRoot = a.Dir, a.ID, a.Runc, a.RuncRoot
	}
	if *dir == "" || checkID(*id) != nil {
		log.Error("bad arguments", "dir", *dir, "id", *id)
		return 2
	}
	// No terminal and no parent to answer to: do not die of hangups or
	// broken pipes before the exit code is recorded.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)

	s := shim{
		log:  log.With("id", *id),
		dir:  *dir,
		id:   *id,
		runc: runc{path: *runcPath, root: *runcRoot},
	}
	if err := s.run(); err != nil {
		s.log.Error("shim failed", "err", err)
		return 1
	}
	return 0
}

type shim struct {
	log  *slog.Logger
	dir  string
	id   string
	runc runc
}

func (s shim) run() error {
	console, err := os.OpenFile(filepath.Join(s.dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open console log: %w", err)
	}
	defer console.Close()
	pidFile := filepath.Join(s.dir, "container.pid")
	cmd := exec.Command(s.runc.path, s.runc.args("run",
		"--bundle", filepath.Join(s.dir, "bundle"),
		"--pid-file", pidFile,
		s.id)...)
	cmd.Stdout, cmd.Stderr = console, console
	s.log.Info("starting container", "argv", cmd.Args)
	runErr := cmd.Run()

	rec := exitRecord{FinishedAt: time.Now().UTC()}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &exitErr):
		rec.ExitCode = exitCode(exitErr.ProcessState)
	default:
		rec.ExitCode = -1
		rec.Error = fmt.Sprintf("run %s: %v", filepath.Base(s.runc.path), runErr)
	}
	// The runtime writes the pid file once the container process runs;
	// without it the runtime failed before that (its message is in the
	// console log).
	if rec.Error == "" && !fileExists(pidFile) {
		rec.Error = filepath.Base(s.runc.path) + " failed to start the container"
		if msg := lastLine(tail(filepath.Join(s.dir, "console.log"), 2048)); msg != "" {
			rec.Error += ": " + runcMessage(msg)
		}
	}
	s.log.Info("container exited", "exitCode", rec.ExitCode, "error", rec.Error)
	if err := instancedir.WriteJSON(filepath.Join(s.dir, "exit.json"), rec); err != nil {
		s.log.Error("record exit", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.runc.forceDelete(ctx, s.id); err != nil {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// startShim launches the shim for instance id, detached in its own
// session with its output in shim.log, records its pid and returns a
// channel closed when it exits.
func (d *Driver) startShim(id string, p instancePaths) (<-chan struct{}, error) {
	runcPath, err := exec.LookPath(d.cfg.Runtime)
	if err != nil {
		return nil, fmt.Errorf("find OCI runtime: %w", err)
	}
	if runcPath, err = filepath.Abs(runcPath); err != nil {
		return nil, fmt.Errorf("find OCI runtime: %w", err)
	}
	if err := recordRuntime(p, runcPath); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(p.shimLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open shim log: %w", err)
	}
	defer logFile.Close() // the shim has its own copy
	args := append([]string{}, d.cfg.ShimCommand[1:]...)
	args = append(args, "--dir", p.dir, "--id", id, "--runc", runcPath)
	if d.cfg.RuntimeRoot != "" {
		args = append(args, "--runc-root", d.cfg.RuntimeRoot)
	}
	if s := d.takeStandby(); s != nil {
		err := d.assign(s, id, p, runcPath)
		if err == nil {
			return s.done, nil
		}
		d.log.Warn("standby shim", "id", id, "err", err)
	}
	cmd := exec.Command(d.cfg.ShimCommand[0], args...)
	cmd.Env = append(os.Environ(), d.cfg.ShimEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile // stdin: /dev/null
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim: %w", err)
	}
	done := make(chan struct{})
	go func() {
		// Reap the shim if it ends while we live; after we die, init
		// does.
		_ = cmd.Wait()
		close(done)
	}()
	recordShimPid(d, id, p, cmd.Process.Pid)
	return done, nil
}

// logTo sends the process's stdout and stderr (and so its logs) to the
// file at path, appending.
func logTo(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open shim log: %w", err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("shim log: %w", err)
		}
	}
	return nil
}

// shimAlive reports whether the shim recorded in p.shimPid still runs.
// The record is the shim's pid and start time, which must both match, so
// that a recycled pid is not mistaken for the shim; a record of the pid
// alone (written before standby shims) is checked by the process's
// command line.
func shimAlive(p instancePaths) bool {
	data, err := os.ReadFile(p.shimPid)
	if err != nil {
		return false
	}
	pidText, start, timed := strings.Cut(strings.TrimSpace(string(data)), " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	if timed {
		now, ok := procStartTime(pid)
		return ok && now == start
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte("\x00--dir\x00"+p.dir+"\x00")) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return false
	}
	// pid (comm) S ...: a zombie has exited.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

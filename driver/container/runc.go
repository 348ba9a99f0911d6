package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runc runs an OCI runtime with runc's command line: runc itself or
// crun, which take the same commands and flags for everything the driver
// does. Every call gets an argv; nothing passes through a shell.
type runc struct {
	path string
	// root is the runtime's --root; empty for its default.
	root string
}

// defaultRoots are the state directories runc and crun use as root when
// not given --root.
var defaultRoots = []string{"/run/runc", "/run/crun"}

// runcState is the JSON printed by `runc state`.
type runcState struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// args returns runc's global flags followed by args.
func (r runc) args(args ...string) []string {
	var out []string
	if r.root != "" {
		out = append(out, "--root", r.root)
	}
	return append(out, args...)
}

// run runs runc with args and returns its stdout; on failure the error
// carries stderr.
func (r runc) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.path, r.args(args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &runcError{prog: filepath.Base(r.path), args: args, err: err, stderr: runcMessage(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// state returns runc's view of container id; found is false if runc does
// not know it.
func (r runc) state(ctx context.Context, id string) (st runcState, found bool, err error) {
	out, err := r.run(ctx, "state", id)
	if err != nil {
		if isNotExist(err) {
			return runcState{}, false, nil
		}
		return runcState{}, false, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return runcState{}, false, fmt.Errorf("parse runc state of %s: %w", id, err)
	}
	return st, true, nil
}

// mayHold reports whether the runtime may hold state of container id:
// false only when its state directory of the container is certainly
// absent, which spares a runtime call when a container is started for
// the first time. Without a root it looks in the default roots of both
// runtimes.
func (r runc) mayHold(id string) bool {
	roots := defaultRoots
	if r.root != "" {
		roots = []string{r.root}
	}
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, id)); !errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// kill sends sig (a name such as "TERM") to the container's init.
func (r runc) kill(ctx context.Context, id, sig string) error {
	_, err := r.run(ctx, "kill", id, sig)
	return err
}

// forceDelete removes the container from runc, killing it if needed.
func (r runc) forceDelete(ctx context.Context, id string) error {
	_, err := r.run(ctx, "delete", "--force", id)
	if err != nil && isNotExist(err) {
		return nil
	}
	return err
}

// exec runs argv in container id with extra env and returns its exit
// code. The process gets no_new_privs as the container's does: runc takes
// it from the container's spec, crun only from this flag.
func (r runc) exec(ctx context.Context, id string, env, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	args := []string{"exec", "--no-new-privs"}
	for _, e := range env {
		args = append(args, "--env", e)
	}
	args = append(args, id)
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, r.path, r.args(args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	if err == nil {
		return 0, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitCode(exitErr.ProcessState), nil
	}
	return -1, fmt.Errorf("run %s exec: %w", r.path, err)
}

// exitCode is the process's exit status, or 128+signal if a signal
// ended it (as shells report it).
func exitCode(ps interface{ Sys() any }) int {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return -1
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// runcError is a failed runtime call.
type runcError struct {
	prog   string // the runtime's name
	args   []string
	err    error
	stderr string
}

func (e *runcError) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.prog, strings.Join(e.args, " "), e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *runcError) Unwrap() error { return e.err }

// isNotExist reports whether the runtime said the container does not
// exist: runc says so, crun cannot open the container's status file.
func isNotExist(err error) bool {
	var re *runcError
	return errors.As(err, &re) && (strings.Contains(re.stderr, "does not exist") ||
		strings.Contains(re.stderr, "/status`: No such file or directory"))
}

// isNotRunning reports whether runc refused a kill because the container
// has already stopped.
func isNotRunning(err error) bool {
	var re *runcError
	return errors.As(err, &re) && (strings.Contains(re.stderr, "not running") ||
		strings.Contains(re.stderr, "process already finished") ||
		strings.Contains(re.stderr, "container not running"))
}

// runcMessage extracts the msg="..." parts of runc's logrus output, or
// returns the trimmed text.
func runcMessage(s string) string {
	s = strings.TrimSpace(s)
	var msgs []string
	for _, line := range strings.Split(s, "\n") {
		_, rest, ok := strings.Cut(line, `msg="`)
		if !ok {
			continue
		}
		end := strings.LastIndex(rest, `"`)
		if end < 0 {
			continue
		}
		msgs = append(msgs, strings.ReplaceAll(rest[:end], `\"`, `"`))
	}
	if len(msgs) == 0 {
		return s
	}
	return strings.Join(msgs, "; ")
}

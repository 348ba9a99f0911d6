package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ttyExecMain is the helper of ExecTTY: `container-shim tty-exec
// --pid-file <file> -- <runtime> <runtime args>`. It makes itself a child
// subreaper, runs the runtime's detached exec, then waits for the command
// (whose pid the runtime wrote to the pid file) and writes JSON lines to
// its standard output: {"pid":N} once the command runs, {"exitCode":N}
// when it ends, or {"error":"..."}. It returns the helper's own exit
// code.
func ttyExecMain(args []string) int {
	fs := flag.NewFlagSet("tty-exec", flag.ContinueOnError)
	pidFile := fs.String("pid-file", "", "where the runtime writes the command's pid")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	out := json.NewEncoder(os.Stdout)
	report := func(r ttyReport) int {
		if err := out.Encode(r); err != nil {
			return 1
		}
		return 0
	}
	if *pidFile == "" || len(argv) == 0 {
		report(ttyReport{Error: "tty-exec: want --pid-file FILE -- RUNTIME ARGS..."})
		return 2
	}
	// The agent may go away; the command's exit must still be reaped.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return report(ttyReport{Error: fmt.Sprintf("become a subreaper: %v", err)})
	}
	var output bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		re := &runcError{prog: filepath.Base(argv[0]), args: argv[1:], err: err, stderr: runcMessage(output.String())}
		return report(ttyReport{Error: re.Error(), Runtime: true})
	}
	data, err := os.ReadFile(*pidFile)
	if err != nil {
		return report(ttyReport{Error: fmt.Sprintf("read the command's pid: %v", err)})
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return report(ttyReport{Error: fmt.Sprintf("bad pid %q from the runtime", data)})
	}
	report(ttyReport{Pid: pid})
	// The runtime has exited: the command, its orphan, is our child now.
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return report(ttyReport{Error: fmt.Sprintf("wait for the command: %v", err)})
		}
		if wpid != pid {
			continue // something else orphaned on the way
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return report(ttyReport{ExitCode: &code})
	}
}

package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// ttyDrainGrace is how long the output of a command that has ended is
// still read, when something it left behind keeps its terminal open.
const ttyDrainGrace = time.Second

// handleExecTTY runs a command on a terminal in a running instance whose
// driver can (containers). The request asks to upgrade to
// api.ExecTTYProtocol and carries the command and the terminal's size in
// its query; after the 101 answer the connection carries ttyframe frames
// until the command ends (an Exit frame, then the agent closes) or the
// caller closes, which hangs the terminal up.
func (s *Server) handleExecTTY(w http.ResponseWriter, r *http.Request) {
	uid, inst, d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	tx, ok := d.(driver.TTYExecer)
	if !ok {
		writeError(w, api.Invalid("tty", "exec on a terminal works in containers; a virtual machine has its console",
			"driver %s cannot run commands on a terminal", d.Name()))
		return
	}
	q := r.URL.Query()
	argv := q["command"]
	if len(argv) == 0 || argv[0] == "" {
		writeError(w, api.Invalid("command", "give the program and each argument as a command parameter", "command is required"))
		return
	}
	rows, cols, err := ttyframe.QuerySize(q)
	if err != nil {
		writeError(w, api.Invalid("rows", "give the terminal's size as rows and cols", "%v", err))
		return
	}
	if apiErr := notRunning(r.Context(), d, inst, uid); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	tty, err := tx.ExecTTY(r.Context(), uid, argv, driver.TermSize{Rows: rows, Cols: cols})
	if errors.Is(err, driver.ErrExecStart) {
		writeError(w, api.Invalid("command", "check the program's path in the instance", "%v", err))
		return
	}
	if err != nil {
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal,
			Message: fmt.Sprintf("exec on a terminal: %v", err)})
		return
	}
	caller, err := upgrade.Accept(w, api.ExecTTYProtocol)
	if err != nil {
		tty.Close()
		s.cfg.Logger.Warn("exec on a terminal", "instance", key(inst), "err", err)
		return
	}
	s.cfg.Logger.Info("terminal opened", "instance", key(inst), "command", argv[0])
	code, err := serveTTY(r.Context(), caller, tty)
	s.cfg.Logger.Info("terminal closed", "instance", key(inst), "exitCode", code, "err", err)
}

// serveTTY carries a command's terminal over stream in ttyframe frames
// until the command ends, then sends its exit code (or an Error frame)
// and closes both. The caller closing stream, or ctx ending, hangs the
// terminal up. It returns the command's exit code.
func serveTTY(ctx context.Context, stream io.ReadWriteCloser, tty driver.TTY) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		tty.Close()
		stream.Close()
	})
	defer stop()
	defer stream.Close()
	go func() {
		// The caller's keystrokes and resizes; its leaving hangs up.
		defer tty.Close()
		fr := ttyframe.NewReader(stream)
		for {
			f, err := fr.Next()
			if err != nil {
				return
			}
			switch f.Type {
			case ttyframe.Data:
				if _, err := tty.Write(f.Payload); err != nil {
					return
				}
			case ttyframe.Resize:
				if rows, cols, err := f.Size(); err == nil && rows > 0 && cols > 0 {
					tty.Resize(driver.TermSize{Rows: rows, Cols: cols})
				}
			}
		}
	}()
	fw := ttyframe.NewWriter(stream)
	output := make(chan struct{})
	go func() {
		defer close(output)
		io.Copy(fw, tty)
	}()
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tty.Wait()
	}()
	select {
	case <-output:
	case <-exited:
		// Output may still be on its way, or something the command left
		// behind holds the terminal.
		select {
		case <-output:
		case <-time.After(ttyDrainGrace):
		}
	}
	tty.Close()
	<-output
	code, err := tty.Wait()
	if err != nil {
		if werr := fw.Error(err.Error()); werr != nil {
			err = errors.Join(err, werr)
		}
		return code, err
	}
	return code, fw.Exit(code)
}

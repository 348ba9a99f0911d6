package instance

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// eofKey is Ctrl-D, which a terminal turns into the end of input: sent
// when piped input to `exec -t` ends.
const eofKey = 0x04

// termSize is a terminal's rows and columns.
type termSize struct{ rows, cols uint16 }

// execTTY runs args[1:] in instance args[0] on a terminal: the local
// terminal (when standard input is one) is put in raw mode and restored
// at the end, and its size follows the window's (SIGWINCH).
func execTTY(cmd *cobra.Command, o *command.Options, args []string) error {
	in, out := cmd.InOrStdin(), cmd.OutOrStdout()
	size := termSize{24, 80}
	fd := -1
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd = int(f.Fd())
		if s, ok := localSize(fd); ok {
			size = s
		}
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	conn, err := c.ExecTTY(cmd.Context(), o.Project(), args[0], args[1:], size.rows, size.cols)
	if err != nil {
		return err
	}
	defer conn.Close()
	resizes := make(chan termSize, 1)
	if fd >= 0 {
		state, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, state)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case <-winch:
					if s, ok := localSize(fd); ok {
						select {
						case resizes <- s:
						default: // one pending is enough: it is read again
						}
					}
				}
			}
		}()
	}
	code, err := runTTY(in, out, conn, resizes)
	if err != nil {
		return err
	}
	if code != 0 {
		return &command.ExitError{Code: code}
	}
	return nil
}

// localSize is the size of the terminal fd.
func localSize(fd int) (termSize, bool) {
	cols, rows, err := term.GetSize(fd)
	if err != nil || rows <= 0 || cols <= 0 || rows > 0xffff || cols > 0xffff {
		return termSize{}, false
	}
	return termSize{uint16(rows), uint16(cols)}, true
}

// runTTY carries a terminal: in is typed at the command (Ctrl-D follows
// when in ends), resizes are passed on, the command's output goes to
// out. It returns the command's exit code once the server sends it.
func runTTY(in io.Reader, out io.Writer, conn io.ReadWriter, resizes <-chan termSize) (int, error) {
	fw := ttyframe.NewWriter(conn)
	done := make(chan struct{})
	defer close(done)
	go func() {
		if _, err := io.Copy(fw, in); err == nil {
			fw.Write([]byte{eofKey})
		}
	}()
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-resizes:
				if fw.Resize(s.rows, s.cols) != nil {
					return
				}
			}
		}
	}()
	fr := ttyframe.NewReader(conn)
	for {
		f, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return -1, errors.New("the terminal closed without the command's exit code")
			}
			return -1, fmt.Errorf("the terminal was lost: %w", err)
		}
		switch f.Type {
		case ttyframe.Data:
			if _, err := out.Write(f.Payload); err != nil {
				return -1, fmt.Errorf("write output: %w", err)
			}
		case ttyframe.Exit:
			return f.ExitCode()
		case ttyframe.Error:
			return -1, fmt.Errorf("the terminal was lost: %s", f.Payload)
		}
	}
}

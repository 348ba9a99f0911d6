package command

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
)

// ExitError asks the caller of the root command to exit with Code without
// printing anything; exec uses it to pass on the exit code of the remote
// command.
type ExitError struct {
	Code int
}

// Error says which exit code the command asks for.
func (e *ExitError) Error() string { return fmt.Sprintf("the command exited with status %d", e.Code) }

// displayError makes an error print as FormatError renders it, also when
// cobra prints it.
type displayError struct{ err error }

func (e *displayError) Error() string { return FormatError(e.err) }
func (e *displayError) Unwrap() error { return e.err }

// WrapErrors makes the RunE of c and its subcommands return errors that
// print as FormatError renders them, so that a plain c.Execute() shows
// them as users should read them too.
func WrapErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &displayError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		WrapErrors(sub)
	}
}

// PrintError writes err as "Error: <message> (field: <field>; hint: <hint>)"
// followed by a newline. An API error wrapped with context keeps the
// context in front of its message.
func PrintError(w io.Writer, err error) {
	fmt.Fprintf(w, "Error: %s\n", FormatError(err))
}

// FormatError renders err for people: API errors show their field and hint.
func FormatError(err error) string {
	if d, ok := err.(*displayError); ok {
		err = d.err
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	msg := ae.Message
	var extra []string
	if ae.Field != "" {
		extra = append(extra, "field: "+ae.Field)
	}
	if ae.Hint != "" {
		extra = append(extra, "hint: "+ae.Hint)
	}
	if len(extra) > 0 {
		msg += " (" + strings.Join(extra, "; ") + ")"
	}
	// Keep context wrapped around the API error ("create web-2: ...").
	if outer := err.Error(); outer != ae.Error() && strings.HasSuffix(outer, ae.Error()) {
		msg = strings.TrimSuffix(outer, ae.Error()) + msg
	}
	return msg
}

// usageError marks bad command-line input.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// UsageError returns an error about the command line whose message is
// msg, as cobra's flag errors become.
func UsageError(msg string) error {
	return &usageError{msg: msg}
}

// FlagError returns an error about a flag's value.
func FlagError(flag, format string, args ...any) error {
	return &usageError{msg: "--" + flag + ": " + fmt.Sprintf(format, args...)}
}

// ArgError returns an error about a positional argument.
func ArgError(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// IsUsageError reports whether err is about bad command-line input, after
// which the user is pointed at --help.
func IsUsageError(err error) bool {
	var u *usageError
	return errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command")
}

// ExactArgs accepts exactly the named positional arguments.
func ExactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		n := len(args)
		if d := cmd.ArgsLenAtDash(); d >= 0 {
			n = d
		}
		if n != len(names) {
			return ArgError("%s wants %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), n)
		}
		return nil
	}
}

// NameThenCommand accepts one NAME, then after -- the words of a command
// (NAME -- COMMAND ARGS...), as create commands that take a command do.
func NameThenCommand(cmd *cobra.Command, args []string) error {
	if n := cmd.ArgsLenAtDash(); n == 0 || len(args) == 0 {
		return ArgError("%s wants a NAME", cmd.CommandPath())
	} else if n > 1 || (n < 0 && len(args) > 1) {
		return ArgError("%s wants one NAME; put the command after --", cmd.CommandPath())
	}
	return nil
}

// MinArgs accepts at least one argument, described by name.
func MinArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return ArgError("%s wants at least one %s", cmd.CommandPath(), name)
		}
		return nil
	}
}

package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/browsertest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestConsoleExecTTY runs a shell on a terminal in a container: from the
// CLI (`ouro instance exec -t`, whose exit code is the command's) and in
// the browser's terminal, where commands that need a terminal (tty, stty
// size) answer with the terminal xterm.js shows and Ctrl-C interrupts
// the command running.
func TestConsoleExecTTY(t *testing.T) {
	browsertest.NeedChromium(t)
	nc := newNetCloud(t, 1)
	nc.ouro("instance", "create", "tty-ctr", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	nc.waitPhase("default", "tty-ctr", api.PhaseRunning)

	t.Run("cli", func(t *testing.T) {
		// The CLI's input (not a terminal here) ends at once: Ctrl-D
		// ends the read.
		out, errOut, err := nc.run(nil, "instance", "exec", "-t", "tty-ctr", "--", "sh", "-c", "tty; read x; stty size; echo $TERM; exit 3")
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
			t.Fatalf("exec -t: %v, want exit code 3\nstdout: %q\nstderr: %s", err, out, errOut)
		}
		for _, want := range []string{"/dev/pts/", "24 80\r\n", "xterm-256color\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("exec -t printed %q, want %q in it", out, want)
			}
		}
		// Without -t, exec has no terminal, as before.
		out, _, _ = nc.run(nil, "instance", "exec", "tty-ctr", "--", "tty")
		if !strings.Contains(out, "not a tty") {
			t.Errorf("exec without -t: tty printed %q, want not a tty", out)
		}
	})

	t.Run("browser", func(t *testing.T) {
		admin := nc.adminUser()
		b := nc.consoleBrowser()
		p := b.NewPage(t)
		p.SignIn(admin.name, admin.password)
		p.Route("#/instances/tty-ctr/console")
		p.WaitSelector(60*time.Second, "main .xterm")
		p.Wait(60*time.Second, "the terminal connected", `(() => {
			const ta = document.querySelector('main .xterm-helper-textarea');
			if (!ta) return {ok: false, detail: 'no terminal input'};
			ta.focus();
			const st = document.querySelector('main .term-status');
			return {ok: !!st && st.classList.contains('term-connected'), detail: st ? st.textContent : 'no status'};
		})()`)
		// The answers hold what the typed lines, echoed, do not: the
		// terminal's device upper-cased, its size after "SIZE=".
		p.Press("main .xterm-helper-textarea", "tty | tr a-z A-Z; stty size | sed s/^/SIZE=/\r")
		p.Wait(60*time.Second, "the shell's answers in the terminal", `(() => {
			const rows = document.querySelectorAll('main .xterm-rows > div').length;
			const el = document.querySelector('main .xterm-rows');
			const text = el ? el.innerText : '';
			const size = text.match(/SIZE=(\d+) (\d+)/);
			const ok = text.includes('/DEV/PTS/') && !!size && Number(size[1]) === rows && Number(size[2]) > 20;
			return {ok, detail: rows + ' rows shown: ' + text.slice(-600)};
		})()`)
		p.Screenshot("console-exec-tty")

		// Ctrl-C, pressed in the page, interrupts the command running
		// on the terminal: the next line runs at once.
		p.Press("main .xterm-helper-textarea", "sleep 1001\r")
		wait.ForDetail(t, 60*time.Second, "sleep 1001 running in the container", func() (bool, string) {
			out, _, _ := nc.run(nil, "instance", "exec", "tty-ctr", "--", "ps")
			return strings.Contains(out, "sleep 1001"), out
		})
		p.Run("press Ctrl-C", chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		p.Press("main .xterm-helper-textarea", "echo done-$((6*7))\r")
		p.Wait(30*time.Second, "the line after Ctrl-C answered", `(() => {
			const el = document.querySelector('main .xterm-rows');
			const text = el ? el.innerText : '';
			return {ok: text.includes('done-42'), detail: text.slice(-300)};
		})()`)
		if out, _, _ := nc.run(nil, "instance", "exec", "tty-ctr", "--", "ps"); strings.Contains(out, "sleep 1001") {
			t.Errorf("sleep 1001 still runs after Ctrl-C:\n%s", out)
		}
		p.Press("main .xterm-helper-textarea", "exit 4\r")
		p.Wait(60*time.Second, "the exit code shown", `(() => {
			const el = document.querySelector('main .xterm-rows');
			const text = el ? el.innerText : '';
			return {ok: text.includes('exited with code 4'), detail: text.slice(-300)};
		})()`)
	})
}

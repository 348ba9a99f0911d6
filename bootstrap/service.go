package bootstrap

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
)

// service is one of ouro's daemons on a host: the server or the agent.
type service struct {
	// role is RoleServer or RoleAgent; the unit is ouro-<role>.
	role string
	argv []string
	// env is what the first start needs (a join token); it goes into an
	// environment file readable by root only, removed once joined, so
	// the unit itself never changes because of it.
	env map[string]string
}

func (s service) unitName() string { return "ouro-" + s.role }

// unit is the systemd unit of s. The agent's uses KillMode=process: a
// restart (an upgrade) stops the agent, not the instances it started.
func (s service) unit(dataDir string) string {
	var b strings.Builder
	desc := map[string]string{RoleServer: "Ouroboros API server and controllers", RoleAgent: "Ouroboros host agent"}[s.role]
	fmt.Fprintf(&b, "# Written by ouro bootstrap; a rerun puts it back if changed by hand.\n")
	fmt.Fprintf(&b, "[Unit]\nDescription=%s\nAfter=network-online.target\nWants=network-online.target\n\n", desc)
	fmt.Fprintf(&b, "[Service]\nEnvironmentFile=-%s\nExecStart=%s\n", s.envFile(dataDir), systemdArgs(s.argv))
	if s.role == RoleAgent {
		b.WriteString("KillMode=process\n")
	}
	b.WriteString("Restart=always\nRestartSec=2\nLimitNOFILE=1048576\n\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

func (s service) envFile(dataDir string) string { return path.Join(dataDir, s.unitName()+".env") }
func (s service) pidFile(dataDir string) string { return path.Join(dataDir, s.unitName()+".pid") }
func (s service) logFile(dataDir string) string { return path.Join(dataDir, s.unitName()+".log") }

// record is where the unit text is kept on a host without systemd, to
// compare with on the next run.
func (s service) record(dataDir string) string { return path.Join(dataDir, s.unitName()+".service") }

func (s service) envText() string {
	keys := make([]string, 0, len(s.env))
	for k := range s.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s.env[k])
	}
	return b.String()
}

// systemdArgs quotes argv for ExecStart: each word in double quotes, with
// backslashes, quotes and $ escaped, and % doubled (a specifier).
func systemdArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		a = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`).Replace(a)
		q[i] = `"` + a + `"`
	}
	return strings.Join(q, " ")
}

// serviceManager starts and stops a host's services: systemd's, or
// processes started directly (hosts without systemd: containers, the
// namespaces of tests), recorded by pid file.
type serviceManager struct {
	r       Runner
	systemd bool
	data    string
}

// ensure makes the service's definition what s says and the service run;
// it reports whether anything changed (in check mode: would change).
func (m serviceManager) ensure(ctx context.Context, s service, check bool) (bool, error) {
	file := s.record(m.data)
	if m.systemd {
		file = "/etc/systemd/system/" + s.unitName() + ".service"
	}
	changed, err := ensureFile(ctx, m.r, file, s.unit(m.data), "0644", check)
	if err != nil {
		return false, err
	}
	running, err := m.running(ctx, s)
	if err != nil {
		return false, err
	}
	if check || (!changed && running) {
		return changed || !running, nil
	}
	if len(s.env) > 0 {
		if err := upload(ctx, m.r, s.envFile(m.data), strings.NewReader(s.envText()), "0600"); err != nil {
			return true, err
		}
	}
	if changed && running {
		if err := m.stop(ctx, s); err != nil {
			return true, err
		}
	}
	return true, m.start(ctx, s)
}

// running reports whether the service runs.
func (m serviceManager) running(ctx context.Context, s service) (bool, error) {
	var cmd string
	if m.systemd {
		cmd = "if systemctl is-active --quiet " + quote(s.unitName()) + "; then echo yes; else echo no; fi"
	} else {
		// The pid file's process, if it is this service's binary.
		cmd = "pid=$(cat " + quote(s.pidFile(m.data)) + " 2>/dev/null) && test -n \"$pid\" && " +
			"tr '\\0' '\\n' < /proc/$pid/cmdline 2>/dev/null | sed -n 2p | grep -qx " + quote(s.role) +
			" && echo yes || echo no"
	}
	out, err := m.r.Run(ctx, cmd, nil)
	if err != nil {
		return false, fmt.Errorf("is %s running: %w", s.unitName(), err)
	}
	return strings.TrimSpace(out) == "yes", nil
}

// start starts the service (and, under systemd, enables it at boot).
func (m serviceManager) start(ctx context.Context, s service) error {
	var cmd string
	if m.systemd {
		cmd = "systemctl daemon-reload && systemctl enable --quiet " + quote(s.unitName()) +
			" && systemctl restart " + quote(s.unitName())
	} else {
		// A session of its own, no terminal, output to its log: it
		// outlives the SSH session that started it.
		env := ""
		if len(s.env) > 0 {
			env = "set -a && . " + quote(s.envFile(m.data)) + " && set +a && "
		}
		cmd = "cd / && umask 022 && mkdir -p " + quote(m.data) + " && " + env + "(setsid " + sh(s.argv...) +
			" >>" + quote(s.logFile(m.data)) + " 2>&1 </dev/null & echo $! > " + quote(s.pidFile(m.data)) + ")"
	}
	if _, err := m.r.Run(ctx, cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", s.unitName(), err)
	}
	return nil
}

// stop stops the service and waits until it has ended (SIGTERM, then
// SIGKILL after 30 s).
func (m serviceManager) stop(ctx context.Context, s service) error {
	var cmd string
	if m.systemd {
		cmd = "systemctl stop " + quote(s.unitName())
	} else {
		cmd = "pid=$(cat " + quote(s.pidFile(m.data)) + " 2>/dev/null) || exit 0; kill \"$pid\" 2>/dev/null || exit 0; " +
			"i=0; while kill -0 \"$pid\" 2>/dev/null; do i=$((i+1)); " +
			"if [ $i -ge 300 ]; then kill -9 \"$pid\"; fi; sleep 0.1; done"
	}
	if _, err := m.r.Run(ctx, cmd, nil); err != nil {
		return fmt.Errorf("stop %s: %w", s.unitName(), err)
	}
	return nil
}

// restart stops the service if it runs and starts it again.
func (m serviceManager) restart(ctx context.Context, s service) error {
	if err := m.stop(ctx, s); err != nil {
		return err
	}
	return m.start(ctx, s)
}

// forgetEnv removes the service's environment file once its one-time
// secret has done its job.
func (m serviceManager) forgetEnv(ctx context.Context, s service) error {
	_, err := m.r.Run(ctx, "rm -f "+quote(s.envFile(m.data)), nil)
	return err
}

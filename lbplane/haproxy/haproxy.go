package haproxy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/process"
)

// Binary is the HAProxy program.
const Binary = "/usr/sbin/haproxy"

// Proxy is the HAProxy of one load balancer: its files in Dir, its
// processes in the network namespace at NetNS.
type Proxy struct {
	Dir   string
	NetNS string
}

func (p Proxy) path(name string) string { return filepath.Join(p.Dir, name) }

// Argv is the master's command line as started (a reload re-executes it
// with more arguments after these).
func (p Proxy) Argv() []string {
	return []string{Binary, "-W", "-D", "-p", p.path(PidFile), "-S", p.path(MasterFile), "-f", p.path(ConfigFile)}
}

// Runtime is the runtime API of the current worker.
func (p Proxy) Runtime() Runtime { return Runtime{Socket: p.path(SocketFile)} }

// Master is the master CLI.
func (p Proxy) Master() Runtime { return Runtime{Socket: p.path(MasterFile)} }

// Running returns the master's pid if it runs, from this directory's
// configuration, in the namespace.
func (p Proxy) Running() (int, bool) {
	return process.Find(p.path(PidFile), p.NetNS, p.Argv())
}

// layoutStamp holds the hash of the layout the running HAProxy loaded.
const layoutStamp = "layout"

// Result says what Ensure did.
type Result struct {
	Started, Reloaded bool
}

// Ensure makes HAProxy run with layout l and members (by pool): it
// starts HAProxy, or reloads it when the layout changed, and changes
// members through the runtime API.
func (p Proxy) Ensure(l *Layout, members map[string][]Member) (Result, error) {
	var res Result
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return res, fmt.Errorf("haproxy dir: %w", err)
	}
	if err := p.writeCerts(l.Certs); err != nil {
		return res, err
	}
	cfg := l.Render(members)
	if err := check(p.path(ConfigFile+".new"), cfg); err != nil {
		return res, err
	}
	hash := l.Hash()
	pid, running := p.Running()
	old, _ := os.ReadFile(p.path(layoutStamp))
	if _, err := process.WriteFile(p.path(ConfigFile), []byte(cfg), 0o600); err != nil {
		return res, err
	}
	switch {
	case !running:
		if err := p.start(); err != nil {
			return res, err
		}
		res.Started = true
	case string(old) != hash:
		if err := p.reload(pid); err != nil {
			return res, err
		}
		res.Reloaded = true
	}
	if _, err := process.WriteFile(p.path(layoutStamp), []byte(hash), 0o600); err != nil {
		return res, err
	}
	return res, p.syncMembers(l, members)
}

// check has HAProxy validate cfg, written at path.
func check(path, cfg string) error {
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("haproxy config: %w", err)
	}
	defer os.Remove(path)
	out, err := exec.Command(Binary, "-c", "-q", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxy config: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// writeCerts writes the pem files of https listeners (mode 0600) and
// removes the others.
func (p Proxy) writeCerts(certs map[string]string) error {
	dir := p.path(CertDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("haproxy certs: %w", err)
	}
	for name, pem := range certs {
		if _, err := process.WriteFile(filepath.Join(dir, name), []byte(pem), 0o600); err != nil {
			return err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := certs[e.Name()]; !ok {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// start starts the master after stopping any leftover of this directory
// (workers of a killed master keep the ports).
func (p Proxy) start() error {
	p.stopLeftovers()
	for _, f := range []string{PidFile, SocketFile, MasterFile} {
		_ = os.Remove(p.path(f))
	}
	// A fresh start assumes members up until their first checks (as
	// HAProxy does): a state file left by a killed process is stale.
	if err := os.WriteFile(p.path(StateFile), []byte("1\n"), 0o600); err != nil {
		return fmt.Errorf("haproxy state file: %w", err)
	}
	if err := process.Start(p.NetNS, p.path("haproxy.log"), p.Argv()); err != nil {
		return err
	}
	return p.waitWorker(-1, 10*time.Second)
}

// reload has the master re-read the configuration, keeping the listening
// sockets (expose-fd listeners: no connection is refused), the servers'
// states (dumped to the state file first) and the old worker's
// connections until they end or hard-stop-after.
func (p Proxy) reload(pid int) error {
	state, err := p.Runtime().Do("show servers state")
	if err != nil {
		return err
	}
	if _, err := process.WriteFile(p.path(StateFile), []byte(state), 0o600); err != nil {
		return err
	}
	before, err := p.masterReloads()
	if err != nil {
		return err
	}
	// The master re-executes itself and closes the connection: the
	// answer (none in 2.6) does not tell the outcome, show proc does.
	_, _ = p.Master().Do("reload")
	if err := p.waitWorker(before, 15*time.Second); err != nil {
		return fmt.Errorf("haproxy reload of %d: %w", pid, err)
	}
	return nil
}

// proc is one line of the master's show proc.
type proc struct {
	pid, reloads int
	kind         string
	old          bool
}

// procs parses the master CLI's show proc.
func (p Proxy) procs() ([]proc, error) {
	out, err := p.Master().Do("show proc")
	if err != nil {
		return nil, err
	}
	var ps []proc
	old := false
	for _, ln := range strings.Split(out, "\n") {
		if strings.HasPrefix(ln, "# old workers") {
			old = true
		}
		f := strings.Fields(ln)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		ps = append(ps, proc{pid: pid, kind: f[1], reloads: n, old: old})
	}
	return ps, nil
}

// masterReloads returns how many times the master reloaded.
func (p Proxy) masterReloads() (int, error) {
	ps, err := p.procs()
	if err != nil {
		return 0, err
	}
	for _, x := range ps {
		if x.kind == "master" {
			return x.reloads, nil
		}
	}
	return 0, errors.New("haproxy show proc: no master")
}

// Workers returns the pids of the current workers (not old ones).
func (p Proxy) Workers() ([]int, error) {
	ps, err := p.procs()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, x := range ps {
		if x.kind == "worker" && !x.old {
			pids = append(pids, x.pid)
		}
	}
	return pids, nil
}

// waitWorker waits until the master reloaded more than `before` times and
// has a current worker that answers on the runtime API.
func (p Proxy) waitWorker(before int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		n, err := p.masterReloads()
		if err == nil && n > before {
			if ws, err := p.Workers(); err == nil && len(ws) > 0 {
				_, err = p.Runtime().Do("show info")
				if err == nil {
					return nil
				}
				last = err
			}
		} else if err != nil {
			last = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := os.ReadFile(p.path("haproxy.log"))
	return fmt.Errorf("haproxy has no new worker after %v: %v: %s", timeout, last, strings.TrimSpace(string(out)))
}

// syncMembers makes the running worker's servers match members, through
// the runtime API.
func (p Proxy) syncMembers(l *Layout, members map[string][]Member) error {
	rt := p.Runtime()
	servers, err := rt.Servers()
	if err != nil {
		return err
	}
	have := map[string]Server{}
	for _, s := range servers {
		have[s.Backend+"/"+s.Name] = s
	}
	var errs []error
	for _, be := range l.Backends {
		want := map[string]bool{}
		for _, m := range members[be.Pool] {
			id := be.Name + "/" + m.Name
			want[id] = true
			s, ok := have[id]
			if !ok {
				errs = append(errs, addServer(rt, be, m))
				continue
			}
			errs = append(errs, updateServer(rt, id, s, m))
		}
		for id, s := range have {
			if s.Backend == be.Name && strings.HasPrefix(s.Name, "m-") && !want[id] {
				errs = append(errs, delServer(rt, id))
			}
		}
	}
	return errors.Join(errs...)
}

// addServer adds a member without a reload. HAProxy 2.6 creates it in
// maintenance with its checks off, and marking it down there does not
// stick (it leaves maintenance up). So it leaves maintenance first, is
// marked down at once (both in one request: the worker runs them back to
// back), and only then are its checks enabled: it gets traffic once Rise
// checks passed.
func addServer(rt Runtime, be Backend, m Member) error {
	id := be.Name + "/" + m.Name
	if err := rt.Exec(fmt.Sprintf("add server %s %s %s", id, hostPort(m), ServerArgs(be, m)), "New server registered"); err != nil {
		return err
	}
	state := "ready"
	if m.Drain {
		state = "drain"
	}
	return rt.Exec(fmt.Sprintf("set server %s state %s; set server %s health down; enable health %s", id, state, id, id))
}

// updateServer changes a server's address, weight and drain state.
func updateServer(rt Runtime, id string, s Server, m Member) error {
	var cmds []string
	if s.Address != m.Address || s.Port != m.Port {
		cmds = append(cmds, fmt.Sprintf("set server %s addr %s port %d", id, m.Address, m.Port))
	}
	if s.Weight != m.Weight {
		cmds = append(cmds, fmt.Sprintf("set server %s weight %d", id, m.Weight))
	}
	switch {
	case m.Drain && (!s.Draining() || s.Maint()):
		cmds = append(cmds, "set server "+id+" state drain")
	case !m.Drain && (s.Draining() || s.Maint()):
		cmds = append(cmds, "set server "+id+" state ready")
	}
	for _, c := range cmds {
		if err := rt.Exec(c, "IP changed", "no need to change", "port changed"); err != nil {
			return err
		}
	}
	return nil
}

// delServer removes a server: maintenance first (no new connection), the
// connections it still has are closed (a member leaves the spec only
// after draining), then it is deleted.
func delServer(rt Runtime, id string) error {
	for _, c := range []string{"set server " + id + " state maint", "shutdown sessions server " + id} {
		if err := rt.Exec(c); err != nil {
			return err
		}
	}
	// Closing the sessions is asynchronous: retry the delete briefly.
	var err error
	for range 50 {
		if err = rt.Exec("del server "+id, "Server deleted"); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Stop stops the master and its workers (old ones too) and removes the
// directory's HAProxy files.
func (p Proxy) Stop() error {
	if pid, ok := p.Running(); ok {
		if err := process.Stop(pid, 5*time.Second); err != nil {
			return err
		}
	}
	p.stopLeftovers()
	return nil
}

// stopLeftovers stops every HAProxy process started with this
// directory's configuration (old workers, workers of a killed master).
func (p Proxy) stopLeftovers() {
	for _, pid := range process.Scan(Binary, p.path(ConfigFile)) {
		_ = process.Stop(pid, 2*time.Second)
	}
}

// Health maps a server's show stat status to an api health.
func Health(status string) string {
	switch {
	case strings.HasPrefix(status, "UP"), status == "DRAIN", status == "NOLB":
		return api.HealthUp
	case strings.HasPrefix(status, "DOWN"):
		return api.HealthDown
	}
	return api.HealthUnknown
}

// Sessions sums, per server name, the sessions of the servers in the
// backends of a pool.
func Sessions(servers []Server, backends []string) map[string]int {
	out := map[string]int{}
	for _, s := range servers {
		if slices.Contains(backends, s.Backend) {
			out[s.Name] += s.Sessions
		}
	}
	return out
}

// Package cephtest runs a real, minimal Ceph cluster for tests: one
// monitor, one manager and three OSDs with BlueStore on sparse files, all
// in one temporary directory, their daemons started directly (no systemd)
// and killed when the cluster stops.
//
// Startup takes about 20 s, so a test binary shares one cluster: Shared
// starts it on first use and Main stops it after the tests. Start makes a
// cluster of the caller's own, for tests that break it.
//
// Every daemon listens on 127.0.0.1 only, on ports chosen free at start;
// StartIn runs a cluster in a network namespace of the caller's instead,
// on an address there (for end-to-end tests whose hosts live in
// namespaces of their own).
package cephtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/freeport"
)

// Binaries the cluster needs (Debian's ceph-mon, ceph-osd, ceph-mgr and
// ceph-common packages).
var Binaries = []string{"ceph-mon", "ceph-mgr", "ceph-osd", "ceph-authtool", "monmaptool", "ceph", "rbd"}

// OSDs is the number of OSDs of a cluster: pools keep three copies, and
// I/O goes on while two of them are up (min_size 2).
const OSDs = 3

// PoolName is the RBD pool every cluster has.
const PoolName = "rbd"

// osdSize is the size of each OSD's sparse block file.
const osdSize = 10 << 30

// Cluster is a running test cluster.
type Cluster struct {
	// Dir holds the cluster's configuration, data, logs and sockets.
	Dir string
	// Monitor is the monitor's address, host:port (msgr v1).
	Monitor string
	// Pool is an RBD pool ready for images.
	Pool string
	// User is the client's id without "client." (admin), Key its
	// base64 cephx secret and Keyring the path of a keyring file
	// holding it.
	User, Key, Keyring string
	// Conf is the path of the cluster's ceph.conf (for the ceph and rbd
	// tools in tests; the backend under test writes its own).
	Conf string

	// netns, when set, is the network namespace every daemon and tool
	// runs in, and addr the address the daemons bind there.
	netns, addr string

	mu      sync.Mutex
	daemons map[string]*daemon
	osdIDs  []int
}

// daemon is one running ceph daemon.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a new cluster in dir (which must exist and be empty) and
// returns it once its pool takes I/O and the cluster is HEALTH_OK. On
// error everything started is stopped.
func Start(ctx context.Context, dir string) (c *Cluster, err error) {
	return StartIn(ctx, dir, "", "127.0.0.1")
}

// StartIn is Start in the network namespace at path netns ("": the
// caller's), with every daemon bound to addr, an address of netns. The
// caller's tools reach the cluster through Ceph and RBD, which run in
// netns too.
func StartIn(ctx context.Context, dir, netns, addr string) (c *Cluster, err error) {
	if netns != "" {
		if _, err := exec.LookPath("nsenter"); err != nil {
			return nil, fmt.Errorf("cephtest: nsenter not on PATH: %w", err)
		}
	}
	for _, b := range Binaries {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("cephtest: %s not on PATH: %w", b, err)
		}
	}
	c = &Cluster{Dir: dir, Pool: PoolName, User: "admin", daemons: map[string]*daemon{}, netns: netns, addr: addr}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("cephtest: start in %s (logs in %s): %w", dir, filepath.Join(dir, "log"), err)
		}
	}()
	for _, d := range []string{"mon/a", "mgr/x", "osd", "run", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return c, err
		}
	}
	port, err := freeport.Port()
	if err != nil {
		return c, err
	}
	c.Monitor = net.JoinHostPort(addr, strconv.Itoa(port))
	fsid := newUUID()
	c.Conf = filepath.Join(dir, "ceph.conf")
	if err := os.WriteFile(c.Conf, []byte(c.config(fsid)), 0o600); err != nil {
		return c, err
	}
	if err := c.bootstrapMon(ctx, fsid); err != nil {
		return c, err
	}
	if err := c.spawn("mon.a", "ceph-mon", "-f", "-i", "a", "-c", c.Conf); err != nil {
		return c, err
	}
	if err := c.startMgr(ctx); err != nil {
		return c, err
	}
	if err := c.makeOSDs(ctx); err != nil {
		return c, err
	}
	if err := c.makePool(ctx); err != nil {
		return c, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// config is the cluster's ceph.conf: everything on loopback, data under
// the cluster's directory, sized for a test machine.
func (c *Cluster) config(fsid string) string {
	d := c.Dir
	return fmt.Sprintf(`[global]
fsid = %[1]s
mon_host = v1:%[2]s
public_addr = %[4]s
cluster_addr = %[4]s
ms_bind_msgr2 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = %[3]s/admin.keyring
run_dir = %[3]s/run
admin_socket = %[3]s/run/$cluster-$name.$pid.asok
log_file = %[3]s/log/$name.log
mon_data = %[3]s/mon/$id
mgr_data = %[3]s/mgr/$id
osd_data = %[3]s/osd/$id
# One machine: replicas go to different OSDs, not different hosts.
osd_crush_chooseleaf_type = 0
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_delete = true
mon_data_avail_warn = 1
mon_data_avail_crit = 0
mon_warn_on_pool_no_redundancy = false
mon_osd_min_down_reporters = 1
osd_objectstore = bluestore
# The block file lies outside the OSD's data dir: $osd_data/block would
# become a symlink to itself.
bluestore_block_path = %[3]s/osd/block.$id
bluestore_fsck_on_mkfs = false
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 67108864
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1

[mon]
keyring = %[3]s/mon.keyring

[mgr]
keyring = %[3]s/mgr/$id/keyring

[osd]
keyring = %[3]s/osd/$id/keyring
`, fsid, c.Monitor, d, c.addr)
}

// bootstrapMon makes the keys and the monitor's store.
func (c *Cluster) bootstrapMon(ctx context.Context, fsid string) error {
	d := c.Dir
	monKeyring := filepath.Join(d, "mon.keyring")
	c.Keyring = filepath.Join(d, "admin.keyring")
	steps := [][]string{
		{"ceph-authtool", "--create-keyring", monKeyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"},
		{"ceph-authtool", "--create-keyring", c.Keyring, "--gen-key", "-n", "client.admin",
			"--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *"},
		{"ceph-authtool", monKeyring, "--import-keyring", c.Keyring},
		{"monmaptool", "--create", "--fsid", fsid, "--addv", "a", "[v1:" + c.Monitor + "]", filepath.Join(d, "monmap")},
		{"ceph-mon", "--mkfs", "-i", "a", "-c", c.Conf, "--monmap", filepath.Join(d, "monmap"), "--keyring", monKeyring},
	}
	for _, s := range steps {
		if _, err := c.run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	key, err := c.run(ctx, "ceph-authtool", c.Keyring, "-n", "client.admin", "-p")
	if err != nil {
		return err
	}
	c.Key = strings.TrimSpace(string(key))
	return nil
}

// startMgr gives the manager its key and starts it.
func (c *Cluster) startMgr(ctx context.Context) error {
	keyring := filepath.Join(c.Dir, "mgr", "x", "keyring")
	if _, err := c.run(ctx, "ceph", "-c", c.Conf, "auth", "get-or-create", "mgr.x",
		"mon", "allow profile mgr", "osd", "allow *", "mds", "allow *", "-o", keyring); err != nil {
		return err
	}
	return c.spawn("mgr.x", "ceph-mgr", "-f", "-i", "x", "-c", c.Conf)
}

// makeOSDs creates the OSDs (their mkfs in parallel) and starts them.
func (c *Cluster) makeOSDs(ctx context.Context) error {
	ids := make([]int, OSDs)
	uuids := make([]string, OSDs)
	for i := range ids {
		uuids[i] = newUUID()
		out, err := c.Ceph(ctx, "osd", "new", uuids[i])
		if err != nil {
			return err
		}
		var created struct {
			ID *int `json:"osdid"`
		}
		if err := json.Unmarshal(out, &created); err != nil || created.ID == nil {
			return fmt.Errorf("osd new answered %q: %v", out, err)
		}
		ids[i] = *created.ID
	}
	errs := make([]error, OSDs)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.mkfsOSD(ctx, id, uuids[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.osdIDs = ids
	for _, id := range ids {
		if err := c.StartOSD(id); err != nil {
			return err
		}
	}
	return nil
}

// mkfsOSD makes OSD id's sparse block file, BlueStore and key.
func (c *Cluster) mkfsOSD(ctx context.Context, id int, uuid string) error {
	sid := strconv.Itoa(id)
	data := filepath.Join(c.Dir, "osd", sid)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(c.Dir, "osd", "block."+sid))
	if err != nil {
		return err
	}
	err = f.Truncate(osdSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, "ceph-osd", "-c", c.Conf, "-i", sid, "--mkfs", "--mkkey", "--no-mon-config", "--osd-uuid", uuid); err != nil {
		return err
	}
	_, err = c.Ceph(ctx, "auth", "add", "osd."+sid, "osd", "allow *", "mon", "allow profile osd", "mgr", "allow profile osd",
		"-i", filepath.Join(data, "keyring"))
	return err
}

// makePool creates the RBD pool.
func (c *Cluster) makePool(ctx context.Context) error {
	if _, err := c.Ceph(ctx, "osd", "pool", "create", c.Pool, "8", "8"); err != nil {
		return err
	}
	_, err := c.Ceph(ctx, "osd", "pool", "application", "enable", c.Pool, "rbd")
	return err
}

// ClientCaps are the caps of a client made by NewClient: RBD images in
// the pool, and the blocklist (fencing) on the monitors.
func ClientCaps(pool string) []string {
	return []string{"mon", `profile rbd, allow command "osd blocklist"`, "osd", "profile rbd pool=" + pool}
}

// NewClient creates cephx user client.<name> with ClientCaps on the
// cluster's pool and returns its base64 key.
func (c *Cluster) NewClient(ctx context.Context, name string) (string, error) {
	args := append([]string{"auth", "get-or-create-key", "client." + name}, ClientCaps(c.Pool)...)
	out, err := c.Ceph(ctx, args...)
	if err != nil {
		return "", err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(out, &key); err != nil || key.Key == "" {
		return "", fmt.Errorf("cephtest: auth get-or-create-key answered %q: %v", out, err)
	}
	return key.Key, nil
}

// WaitHealthy waits until the cluster reports HEALTH_OK with every OSD up
// and every placement group active+clean, or ctx ends.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	interval := 100 * time.Millisecond
	last := ""
	for {
		ok, detail := c.healthy(ctx)
		if ok {
			return nil
		}
		if ctx.Err() == nil {
			last = detail
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy: %s: %w", last, ctx.Err())
		case <-time.After(interval):
		}
		interval = min(2*interval, time.Second)
	}
}

// healthy reports whether the cluster is HEALTH_OK with all OSDs up and
// all placement groups active+clean, and what it saw.
func (c *Cluster) healthy(ctx context.Context) (bool, string) {
	out, err := c.Ceph(ctx, "status")
	if err != nil {
		return false, err.Error()
	}
	var st struct {
		Health struct {
			Status string `json:"status"`
		} `json:"health"`
		OSDMap struct {
			NumOSDs   int `json:"num_osds"`
			NumUpOSDs int `json:"num_up_osds"`
			NumInOSDs int `json:"num_in_osds"`
		} `json:"osdmap"`
		PGMap struct {
			NumPGs     int `json:"num_pgs"`
			PGsByState []struct {
				Name  string `json:"state_name"`
				Count int    `json:"count"`
			} `json:"pgs_by_state"`
		} `json:"pgmap"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return false, fmt.Sprintf("ceph status: %v", err)
	}
	clean := 0
	for _, s := range st.PGMap.PGsByState {
		if s.Name == "active+clean" {
			clean = s.Count
		}
	}
	detail := fmt.Sprintf("%s, %d/%d OSDs up, %d/%d PGs active+clean", st.Health.Status,
		st.OSDMap.NumUpOSDs, st.OSDMap.NumOSDs, clean, st.PGMap.NumPGs)
	ok := st.Health.Status == "HEALTH_OK" && st.OSDMap.NumUpOSDs == OSDs && st.OSDMap.NumInOSDs == OSDs &&
		st.PGMap.NumPGs > 0 && clean == st.PGMap.NumPGs
	return ok, detail
}

// Ceph runs the ceph tool as the cluster's admin with --format json and
// returns its standard output.
func (c *Cluster) Ceph(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "ceph", append([]string{"-c", c.Conf, "--format", "json", "--connect-timeout", "30"}, args...)...)
}

// RBD runs the rbd tool as the cluster's admin on its pool's cluster.
func (c *Cluster) RBD(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "rbd", append([]string{"-c", c.Conf}, args...)...)
}

// Rados runs the rados tool as the cluster's admin and returns its
// standard output.
func (c *Cluster) Rados(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "rados", append([]string{"-c", c.Conf}, args...)...)
}

// OSDIDs returns the ids of the cluster's OSDs.
func (c *Cluster) OSDIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.osdIDs...)
}

// KillOSD kills OSD id with SIGKILL and waits for its process to exit.
func (c *Cluster) KillOSD(id int) error {
	return c.kill("osd." + strconv.Itoa(id))
}

// StartOSD starts OSD id (again, after KillOSD).
func (c *Cluster) StartOSD(id int) error {
	sid := strconv.Itoa(id)
	return c.spawn("osd."+sid, "ceph-osd", "-f", "-i", sid, "-c", c.Conf)
}

// Stop kills every daemon of the cluster with SIGKILL and waits for them.
// The directory is left to its owner (a test's TempDir).
func (c *Cluster) Stop() {
	c.mu.Lock()
	names := make([]string, 0, len(c.daemons))
	for n := range c.daemons {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		_ = c.kill(n)
	}
}

// spawn starts a daemon in the foreground of a child process and tracks
// its pid under name.
func (c *Cluster) spawn(name, bin string, args ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.daemons[name]; ok {
		select {
		case <-d.done:
		default:
			return fmt.Errorf("%s already runs (pid %d)", name, d.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "log", name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := c.command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemons die with the test binary even if it never stops them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	c.daemons[name] = d
	return nil
}

// kill sends SIGKILL to the daemon name and waits for it to exit.
func (c *Cluster) kill(name string) error {
	c.mu.Lock()
	d, ok := c.daemons[name]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("cephtest: no daemon %s", name)
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("cephtest: %s (pid %d) did not exit after SIGKILL", name, d.cmd.Process.Pid)
	}
}

// command returns the command running a program in the cluster's
// network namespace. nsenter enters it and executes the program in its
// own process, so the pid is the program's.
func (c *Cluster) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if c.netns == "" {
		return exec.CommandContext(ctx, bin, args...)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + c.netns, "--", bin}, args...)...)
}

// run runs a program and returns its standard output, or an error
// quoting its standard error.
func (c *Cluster) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := c.command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

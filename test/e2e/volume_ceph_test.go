package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/cephtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// cephIP is the address of the test's Ceph cluster on the underlay: its
// daemons run in a namespace of their own, cabled to the switch as the
// hosts are, so each host reaches it from its own address and a host can
// be fenced (blocklisted) by that address alone.
const cephIP = "10.99.0.3"

// newCephCloud makes a cloud of hosts hosts, a Ceph cluster on the
// underlay and the ceph storage pool "rbd" whose user has the caps of a
// pool user (RBD images, and the blocklist for fencing).
func newCephCloud(t *testing.T, hosts int) (nc *netCloud, cl *cephtest.Cluster, key string) {
	t.Helper()
	cephtest.Need(t)
	nc = newNetCloud(t, hosts)
	ns := nc.u.attach(t, "ceph", cephIP)
	cl = cephtest.NewIn(t, ns, cephIP)
	t.Cleanup(func() { detachLoops(t, nc.dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := cl.NewClient(ctx, "ouro")
	if err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(nc.dir, "ceph.client.ouro.keyring")
	if err := os.WriteFile(keyring, []byte("[client.ouro]\n\tkey = "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nc.ouro("pool", "create", "ceph", "rbd", "--monitors", cl.Monitor, "--pool", cl.Pool, "--keyring", keyring, "--user", "ouro")
	return nc, cl, key
}

// onHost runs the CLI with args while every host but host is cordoned,
// so that an instance it creates lands on host.
func (nc *netCloud) onHost(host string, args ...string) {
	nc.t.Helper()
	for _, h := range nc.hosts {
		if h.name != host {
			nc.setUnschedulable(h.name, true)
			defer nc.setUnschedulable(h.name, false)
		}
	}
	nc.ouro(args...)
}

// keyInNoCommandLine fails the test if a process's command line holds
// the Ceph key.
func keyInNoCommandLine(t *testing.T, key string) {
	t.Helper()
	if pids := processesMentioning(key); len(pids) > 0 {
		t.Fatalf("the ceph key is in the command line of pids %v", pids)
	}
}

// detachLoops detaches the loop devices whose backing file is under dir:
// the block devices of ceph volumes of containers (on FUSE exports of the
// hosts' qemu-storage-daemons) outlive a killed agent.
func detachLoops(t testing.TB, dir string) {
	out, err := exec.Command("losetup", "--list", "--json", "--output", "NAME,BACK-FILE").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return
	}
	var list struct {
		Devices []struct {
			Name     string `json:"name"`
			BackFile string `json:"back-file"`
		} `json:"loopdevices"`
	}
	if json.Unmarshal(out, &list) != nil {
		return
	}
	for _, d := range list.Devices {
		if strings.HasPrefix(d.BackFile, dir) {
			if out, err := exec.Command("losetup", "--detach", d.Name).CombinedOutput(); err != nil {
				t.Logf("losetup --detach %s: %v: %s", d.Name, err, out)
			}
		}
	}
}

// volumeLockHolder returns the client holding the advisory lock ouro
// takes on a ceph volume's image (its host's address), or "".
func volumeLockHolder(t *testing.T, cl *cephtest.Cluster, volumeID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := cl.RBD(ctx, "info", "--format", "json", cl.Pool+"/ouro-"+volumeID)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("rbd info: %v in %q", err, out)
	}
	out, err = cl.Rados(ctx, "--pool", cl.Pool, "--format", "json", "lock", "info", "rbd_header."+info.ID, "ouro")
	if err != nil {
		return ""
	}
	var locks struct {
		Lockers []struct {
			Cookie string `json:"cookie"`
		} `json:"lockers"`
	}
	if err := json.Unmarshal(out, &locks); err != nil {
		t.Fatalf("rados lock info: %v in %q", err, out)
	}
	if len(locks.Lockers) != 1 {
		return fmt.Sprint(len(locks.Lockers), " lockers")
	}
	return locks.Lockers[0].Cookie
}

// TestVolumesCeph runs ceph volumes on a real cluster: two instances
// racing for one volume (exactly one gets it), then a stateful group
// member whose host is power-cut comes back on another host with its
// data, once the controller fenced the lost host.
func TestVolumesCeph(t *testing.T) {
	nc, cl, key := newCephCloud(t, 3)
	ctx := context.Background()

	t.Run("PoolRefusals", func(t *testing.T) {
		keyring := filepath.Join(nc.dir, "ceph.client.ouro.keyring")
		wrongKey := filepath.Join(nc.dir, "wrong.keyring")
		other, err := exec.Command("ceph-authtool", "--gen-print-key").Output()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wrongKey, []byte("[client.ouro]\n\tkey = "+strings.TrimSpace(string(other))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(cl.Monitor, ":")
		for _, tc := range []struct {
			name  string
			args  []string
			field string
		}{
			{"no monitor there", []string{"--monitors", cephIP + ":1", "--pool", cl.Pool, "--keyring", keyring}, "spec.ceph.monitors"},
			{"no such pool", []string{"--monitors", cl.Monitor, "--pool", "nope", "--keyring", keyring}, "spec.ceph.pool"},
			{"a key the cluster does not know", []string{"--monitors", cephIP + ":" + port, "--pool", cl.Pool, "--keyring", wrongKey}, "spec.ceph.key"},
		} {
			args := append([]string{"pool", "create", "ceph", "bad", "--user", "ouro"}, tc.args...)
			msg := nc.fails(args...)
			if !strings.Contains(msg, tc.field) {
				t.Errorf("%s: refusal %q does not name %s", tc.name, msg, tc.field)
			}
			t.Logf("%s: %s", tc.name, tail(strings.TrimSpace(msg), 300))
		}
		var p api.StoragePool
		if err := nc.clientAs(nc.admin).Get(ctx, api.StoragePoolKind, "", "bad", &p); err == nil {
			t.Fatal("a refused pool was stored")
		}
	})

	t.Run("RacingAttach", func(t *testing.T) {
		nc.ouro("volume", "create", "shared", "--size", "32M", "--pool", "rbd")
		v := nc.waitVolume("shared", available)
		if v.Spec.Host != "" {
			t.Fatalf("a ceph volume has host %q", v.Spec.Host)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		stderr := make([]string, 2)
		for i := range errs {
			wg.Go(func() {
				_, stderr[i], errs[i] = nc.run(nil, "instance", "create", fmt.Sprintf("r%d", i), "--image", "busybox",
					"--flavor", "tiny", "--volume", "shared:/data", "--", "sleep", "3600")
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatal("both instances got the volume")
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("no instance got the volume: %v", errs)
		}
		if loser := stderr[1-winner]; !strings.Contains(loser, "in use") {
			t.Fatalf("the loser's error does not say the volume is in use: %v: %s", errs[1-winner], loser)
		}
		name := fmt.Sprintf("r%d", winner)
		nc.waitPhase("default", name, api.PhaseRunning)
		wait.ForDetail(t, time.Minute, "winner writes to the volume", func() (bool, string) {
			out, err := nc.exec("", name, "sh", "-c", "echo won > /data/w && sync && cat /data/w")
			return err == nil && strings.TrimSpace(out) == "won", out
		})
		nc.ouro("instance", "delete", name)
		wait.ForDetail(t, 2*time.Minute, name+" gone", func() (bool, string) {
			_, err := nc.instance("default", name)
			return err != nil, fmt.Sprint(err)
		})
	})

	t.Run("Snapshot", func(t *testing.T) {
		nc.ouro("snapshot", "create", "s1", "--volume", "shared")
		wait.ForDetail(t, time.Minute, "snapshot ready", func() (bool, string) {
			var s api.VolumeSnapshot
			err := nc.clientAs(nc.admin).Get(ctx, api.VolumeSnapshotKind, "default", "s1", &s)
			return err == nil && s.Status.State == api.SnapshotReady, fmt.Sprintf("%+v %v", s.Status, err)
		})
		nc.ouro("volume", "create", "restored", "--size", "32M", "--pool", "rbd", "--from-snapshot", "s1")
		nc.waitVolume("restored", available)
		nc.ouro("instance", "create", "rs", "--image", "busybox", "--flavor", "tiny", "--volume", "restored:/data", "--", "sleep", "3600")
		nc.waitPhase("default", "rs", api.PhaseRunning)
		if out, err := nc.exec("", "rs", "cat", "/data/w"); err != nil || strings.TrimSpace(out) != "won" {
			t.Fatalf("the volume made from the snapshot holds %q, %v", out, err)
		}
		keyInNoCommandLine(t, key)
		nc.ouro("instance", "delete", "rs")
		nc.ouro("snapshot", "delete", "s1")
		wait.ForDetail(t, 2*time.Minute, "rs and s1 gone", func() (bool, string) {
			_, err := nc.instance("default", "rs")
			var s api.VolumeSnapshot
			serr := nc.clientAs(nc.admin).Get(ctx, api.VolumeSnapshotKind, "default", "s1", &s)
			return err != nil && serr != nil, fmt.Sprint(err, serr)
		})
		nc.ouro("volume", "delete", "restored")
		wait.ForDetail(t, time.Minute, "volume restored gone", func() (bool, string) {
			var v api.Volume
			err := nc.clientAs(nc.admin).Get(ctx, api.VolumeKind, "default", "restored", &v)
			return err != nil, fmt.Sprintf("%+v", v.Status)
		})
	})

	t.Run("VM", func(t *testing.T) {
		needVM(t)
		for _, h := range nc.hosts {
			killVMsOf(t, h)
		}
		nc.importTinyCLI()
		nc.ouro("volume", "create", "vmdata", "--size", "16M", "--pool", "rbd")
		id := nc.waitVolume("vmdata", available).Status.ID
		h1, h2 := nc.hosts[0].name, nc.hosts[1].name
		nc.onHost(h1, "instance", "create", "vm1", "--image", "tiny", "--flavor", "tiny", "--volume", "vmdata")
		nc.waitPhase("default", "vm1", api.PhaseRunning)
		nc.waitConsoleLine("vm1", "OURO-READY", vmVolumeTimeout, time.Now())
		nc.consoleRun("vm1", onDisk(id)+`echo ceph-marker | dd of=$D conv=fsync 2>/dev/null && echo OURO-WR''OTE $D`, "OURO-WROTE /dev/vd")
		keyInNoCommandLine(t, key)
		if got := volumeLockHolder(t, cl, id); got != hostAddress(nc, h1) {
			t.Fatalf("vmdata is locked by %q, want %s", got, hostAddress(nc, h1))
		}

		// Detach from vm1 (which unlocks it), hot-plug into vm2 on
		// another host: the key goes to QEMU over QMP.
		nc.onHost(h2, "instance", "create", "vm2", "--image", "tiny", "--flavor", "tiny")
		nc.waitPhase("default", "vm2", api.PhaseRunning)
		nc.waitConsoleLine("vm2", "OURO-READY", vmVolumeTimeout, time.Now())
		nc.ouro("volume", "detach", "vmdata")
		nc.waitVolume("vmdata", func(s api.VolumeStatus) bool { return available(s) && s.AttachedTo == "" })
		start := time.Now()
		nc.ouro("volume", "attach", "vmdata", "vm2")
		nc.consoleRun("vm2", onDisk(id)+`echo OURO-READ $(dd if=$D bs=11 count=1 2>/dev/null)`, "OURO-READ ceph-marker")
		t.Logf("ceph volume moved between hosts: attach → read in the guest %v (TCG, CLI and console round trips included)",
			time.Since(start).Round(10*time.Millisecond))
		keyInNoCommandLine(t, key)
		if got := volumeLockHolder(t, cl, id); got != hostAddress(nc, h2) {
			t.Fatalf("vmdata is locked by %q, want %s", got, hostAddress(nc, h2))
		}
		nc.ouro("instance", "delete", "vm1")
		nc.ouro("instance", "delete", "vm2")
	})

	t.Run("MemberSurvivesPowerCut", func(t *testing.T) {
		g := &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "db", Project: "default"}, Spec: api.InstanceGroupSpec{
			Template: api.InstanceTemplate{Image: "busybox", Flavor: "tiny", Command: []string{"sleep", "3600"}},
			Count:    1, Stateful: true,
			VolumeTemplates: []api.VolumeTemplate{{Name: "data", SizeBytes: 64 << 20, Pool: "rbd", Path: "/data"}},
		}}
		if _, err := nc.clientAs(nc.admin).Create(ctx, g, client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ms := nc.waitMembersRunning("db", 1)
		m := ms["db-0"]
		marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
		wait.ForDetail(t, time.Minute, "marker written", func() (bool, string) {
			out, err := nc.exec("", "db-0", "sh", "-c", "echo "+marker+" > /data/marker && sync && cat /data/marker")
			return err == nil && strings.TrimSpace(out) == marker, out
		})
		dead := nc.agents[m.Status.Host]
		deadIP := hostAddress(nc, dead.name)
		volID := nc.volumeOf("db-0-data").Status.ID
		if got := volumeLockHolder(t, cl, volID); got != deadIP {
			t.Fatalf("volume db-0-data is locked by %q, want its host %s", got, deadIP)
		}
		t.Logf("db-0 on %s (%s); cutting its power at %s", dead.name, deadIP, time.Now().UTC().Format("15:04:05.000"))

		start := time.Now()
		powerCut(t, dead)
		ip(t, dead.netns, "link", "set", "eth0", "down")
		var back time.Duration
		wait.ForDetail(t, 2*time.Minute, "db-0 back elsewhere with its marker", func() (bool, string) {
			in, err := nc.instance("default", "db-0")
			if err != nil {
				return false, err.Error()
			}
			if in.Metadata.UID == m.Metadata.UID || in.Status.Host == dead.name || in.Status.Phase != api.PhaseRunning {
				return false, fmt.Sprintf("db-0 %s on %s", in.Status.Phase, in.Status.Host)
			}
			out, err := nc.exec("", "db-0", "cat", "/data/marker")
			if err != nil || strings.TrimSpace(out) != marker {
				return false, fmt.Sprintf("reads %q: %v", out, err)
			}
			back = time.Since(start)
			return true, ""
		})
		t.Logf("host power cut → member back on another host with its data: %v", back.Round(10*time.Millisecond))
		in, err := nc.instance("default", "db-0")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := volumeLockHolder(t, cl, volID), hostAddress(nc, in.Status.Host); got != want {
			t.Fatalf("after the move, volume db-0-data is locked by %q, want %s", got, want)
		}
		for _, line := range strings.Split(nc.server.out.String(), "\n") {
			if strings.Contains(line, "fenced off") || strings.Contains(line, "host phase changed") {
				t.Logf("server: %s", tail(line, 300))
			}
		}
		for _, a := range nc.hosts {
			for _, line := range strings.Split(a.out.String(), "\n") {
				if strings.Contains(line, "another host holds") {
					t.Logf("%s: %s", a.name, tail(line, 300))
					break
				}
			}
		}
		out, err := cl.Ceph(ctx, "osd", "blocklist", "ls")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), deadIP+":0/0") {
			t.Fatalf("the lost host %s is not blocklisted: %s", deadIP, out)
		}

		// The host comes back: once Ready for a while it is let back to
		// the cluster, and the member stays where it is, with its data.
		ip(t, dead.netns, "link", "set", "eth0", "up")
		nc.startAgent(dead)
		wait.ForDetail(t, 2*time.Minute, deadIP+" off the blocklist", func() (bool, string) {
			out, err := cl.Ceph(ctx, "osd", "blocklist", "ls")
			return err == nil && !strings.Contains(string(out), deadIP+":0/0"), string(out)
		})
		ms = nc.waitMembersRunning("db", 1)
		if got := ms["db-0"]; got.Status.Host == dead.name || got.Metadata.UID != in.Metadata.UID {
			t.Fatalf("db-0 moved after its old host came back: %s on %s", got.Metadata.UID, got.Status.Host)
		}
		if out, err := nc.exec("", "db-0", "cat", "/data/marker"); err != nil || strings.TrimSpace(out) != marker {
			t.Fatalf("db-0 reads %q, %v after its old host came back", out, err)
		}
	})
}

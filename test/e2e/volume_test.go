package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// vmVolumeTimeout bounds a guest's answer on the console under TCG on a
// busy machine.
const vmVolumeTimeout = 3 * time.Minute

// consoleRun types cmd on the serial console of VM name and returns what
// came back once want did (the console echoes cmd: want must not be in
// it as typed).
func (c *cloud) consoleRun(name, cmd, want string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), vmVolumeTimeout)
	defer cancel()
	con, err := c.consoleClient().Console(ctx, "default", name)
	if err != nil {
		c.t.Fatalf("console of %s: %v", name, err)
	}
	defer con.Close()
	if nc, ok := con.(net.Conn); ok {
		nc.SetDeadline(time.Now().Add(vmVolumeTimeout))
	} else {
		// A stream without deadlines ends when it is closed.
		stop := time.AfterFunc(vmVolumeTimeout, func() { con.Close() })
		defer stop.Stop()
	}
	if _, err := fmt.Fprintf(con, "\n%s\n", cmd); err != nil {
		c.t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := con.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			c.t.Fatalf("console of %s: %v before %q came; got %q", name, err, want, tail(got.String(), 2000))
		}
	}
	return got.String()
}

// consoleClient returns an admin client whose connections speak
// HTTP/1.1, which the console's protocol switch needs, in the cloud's
// namespace.
func (c *cloud) consoleClient() *client.Client {
	c.t.Helper()
	cfg := client.Config{Server: c.url, Token: c.admin, CACert: c.ca}
	if c.netns != "" {
		tr := c.netnsTransport().Clone()
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		c.t.Cleanup(tr.CloseIdleConnections)
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// volumeOf reads a volume through the CLI.
func (nc *netCloud) volumeOf(name string) api.Volume {
	nc.t.Helper()
	var v api.Volume
	nc.getJSON(&v, "volume", "get", name)
	return v
}

// waitVolume waits until volume name's status satisfies ok.
func (nc *netCloud) waitVolume(name string, ok func(api.VolumeStatus) bool) api.Volume {
	nc.t.Helper()
	var v api.Volume
	wait.ForDetail(nc.t, 3*time.Minute, "volume "+name, func() (bool, string) {
		// A fresh value each time: decoding into the last one would keep
		// the fields the answer leaves out (an emptied attachedTo).
		var cur api.Volume
		if err := nc.clientAs(nc.admin).Get(context.Background(), api.VolumeKind, "default", name, &cur); err != nil {
			return false, err.Error()
		}
		v = cur
		return ok(v.Status), fmt.Sprintf("%+v", v.Status)
	})
	return v
}

func available(s api.VolumeStatus) bool { return s.State == api.VolumeAvailable }

// onDisk is a guest shell snippet that sets D to the /dev path of the
// virtio disk whose serial is serial, waiting up to a minute for it.
func onDisk(serial string) string {
	return `D=; i=0; while [ -z "$D" ] && [ $i -lt 300 ]; do for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = ` + serial +
		` ] && D=/dev/${b##*/}; done; [ -z "$D" ] && sleep 0.2; i=$((i+1)); done; `
}

// TestVolumesLocalVM: a VM writes a marker to a local volume attached at
// boot; the volume is detached and hot-plugged into another VM, which
// reads it; a snapshot is taken, the volume overwritten, and a volume
// made from the snapshot holds the old marker. An attached volume cannot
// be deleted or attached twice, and deleting an instance detaches its
// volumes without deleting them.
func TestVolumesLocalVM(t *testing.T) {
	needVM(t)
	nc := newNetCloud(t, 1)
	killVMsOf(t, nc.hosts[0])
	nc.importTinyCLI()
	nc.ouro("pool", "create", "local", "disks")
	nc.ouro("volume", "create", "data", "--size", "16M", "--pool", "disks")
	data := nc.waitVolume("data", available)
	if data.Spec.Host != nc.hosts[0].name {
		t.Fatalf("volume host %q", data.Spec.Host)
	}
	id := data.Status.ID

	nc.ouro("instance", "create", "vm1", "--image", "tiny", "--flavor", "tiny", "--volume", "data")
	nc.waitPhase("default", "vm1", api.PhaseRunning)
	nc.waitConsoleLine("vm1", "OURO-READY", vmVolumeTimeout, time.Now())
	nc.consoleRun("vm1", onDisk(id)+`echo first-marker | dd of=$D conv=fsync 2>/dev/null && echo OURO-WR''OTE $D`, "OURO-WROTE /dev/vd")
	nc.waitVolume("data", func(s api.VolumeStatus) bool { return s.State == api.VolumeInUse && s.AttachedTo == "vm1" })

	// Attached: no second attach, no delete.
	nc.ouro("instance", "create", "vm2", "--image", "tiny", "--flavor", "tiny")
	nc.waitPhase("default", "vm2", api.PhaseRunning)
	if msg := nc.fails("volume", "attach", "data", "vm2"); !strings.Contains(msg, "in use by instance vm1") {
		t.Fatalf("second attach: %s", msg)
	}
	if msg := nc.fails("volume", "delete", "data"); !strings.Contains(msg, "attached to instance vm1") {
		t.Fatalf("delete of an attached volume: %s", msg)
	}

	// Detach (hot-unplug from vm1), hot-plug into vm2, read.
	nc.ouro("volume", "detach", "data")
	nc.waitVolume("data", func(s api.VolumeStatus) bool { return available(s) && s.AttachedTo == "" })
	nc.waitConsoleLine("vm2", "OURO-READY", vmVolumeTimeout, time.Now())
	start := time.Now()
	nc.ouro("volume", "attach", "data", "vm2")
	out := nc.consoleRun("vm2", onDisk(id)+`echo OURO-READ $(dd if=$D bs=12 count=1 2>/dev/null)`, "OURO-READ first-marker")
	t.Logf("attach → disk visible and read in the guest: %v (TCG, CLI and console round trips included)", time.Since(start).Round(10*time.Millisecond))
	_ = out

	// Snapshot, overwrite, restore.
	nc.ouro("snapshot", "create", "s1", "--volume", "data")
	wait.ForDetail(t, time.Minute, "snapshot ready", func() (bool, string) {
		var s api.VolumeSnapshot
		err := nc.clientAs(nc.admin).Get(context.Background(), api.VolumeSnapshotKind, "default", "s1", &s)
		return err == nil && s.Status.State == api.SnapshotReady, fmt.Sprintf("%+v %v", s.Status, err)
	})
	nc.consoleRun("vm2", onDisk(id)+`echo later-marker | dd of=$D conv=fsync 2>/dev/null && echo OURO-WR''OTE2`, "OURO-WROTE2")
	nc.ouro("volume", "create", "restored", "--size", "16M", "--pool", "disks", "--from-snapshot", "s1")
	restored := nc.waitVolume("restored", available)
	nc.ouro("volume", "attach", "restored", "vm2")
	nc.consoleRun("vm2", onDisk(restored.Status.ID)+`echo OURO-RESTORED $(dd if=$D bs=12 count=1 2>/dev/null)`, "OURO-RESTORED first-marker")
	if msg := nc.fails("volume", "delete", "data"); !strings.Contains(msg, "vm2") {
		t.Fatalf("delete of a volume attached to vm2: %s", msg)
	}

	// Deleting the instance detaches its volumes and keeps them.
	nc.ouro("instance", "delete", "vm2")
	wait.ForDetail(t, 2*time.Minute, "vm2 gone", func() (bool, string) {
		in, err := nc.instance("default", "vm2")
		if err != nil {
			return true, ""
		}
		return false, fmt.Sprintf("%s %s %v", in.Status.Phase, in.Status.Message, in.Metadata.Finalizers)
	})
	nc.waitVolume("data", func(s api.VolumeStatus) bool { return available(s) && s.AttachedTo == "" })
	nc.waitVolume("restored", func(s api.VolumeStatus) bool { return available(s) && s.AttachedTo == "" })
	if msg := nc.fails("volume", "delete", "data"); !strings.Contains(msg, "VolumeSnapshot default/s1") {
		t.Fatalf("delete of a snapshotted volume: %s", msg)
	}
	nc.ouro("snapshot", "delete", "s1")
	wait.ForDetail(t, time.Minute, "data deletable", func() (bool, string) {
		out, errOut, err := nc.run(nil, "volume", "delete", "data")
		return err == nil, out + errOut
	})
	wait.ForDetail(t, time.Minute, "data gone", func() (bool, string) {
		vols := listJSON[api.Volume](nc.cloud, "volume", "list")
		return len(vols) == 1 && vols[0].Metadata.Name == "restored", fmt.Sprint(len(vols))
	})
}

// TestVolumesContainerKeepsData: a container writes to a local volume
// mounted at a path (formatted on first use); the instance is deleted and
// made again, and the new one reads what the first wrote.
func TestVolumesContainerKeepsData(t *testing.T) {
	nc := newNetCloud(t, 1)
	nc.ouro("pool", "create", "local", "disks")
	nc.ouro("volume", "create", "cdata", "--size", "32M", "--pool", "disks")
	nc.waitVolume("cdata", available)
	create := func(script string) {
		t.Helper()
		nc.ouro("instance", "create", "c1", "--image", "busybox", "--flavor", "tiny", "--volume", "cdata:/srv/data",
			"--", "sh", "-c", script)
	}
	create("echo kept > /srv/data/marker && sleep 3600")
	nc.waitPhase("default", "c1", api.PhaseRunning)
	wait.ForDetail(t, time.Minute, "marker written", func() (bool, string) {
		out, err := nc.exec("", "c1", "cat", "/srv/data/marker")
		return err == nil && strings.TrimSpace(out) == "kept", out
	})
	nc.ouro("instance", "delete", "c1")
	wait.ForDetail(t, 2*time.Minute, "c1 gone", func() (bool, string) {
		_, err := nc.instance("default", "c1")
		return err != nil, fmt.Sprint(err)
	})
	nc.waitVolume("cdata", func(s api.VolumeStatus) bool { return available(s) && s.AttachedTo == "" })
	create("sleep 3600")
	nc.waitPhase("default", "c1", api.PhaseRunning)
	out, err := nc.exec("", "c1", "cat", "/srv/data/marker")
	if err != nil || strings.TrimSpace(out) != "kept" {
		t.Fatalf("the new instance reads %q, %v", out, err)
	}
}

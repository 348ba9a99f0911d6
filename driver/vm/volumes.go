package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// Volumes: a VM's volumes are recorded in volumes.json of its instance
// directory (the spec's at Create, then changed by AttachVolume and
// DetachVolume), so that every start attaches what is attached now and a
// restarted agent finds it. Each is a -blockdev node from its backend
// and a virtio-blk device whose serial is the volume id. A data volume
// sits on a PCIe root port of its own (q35 and aarch64 virt): hot-plug
// needs one, and a device on pcie.0 could not be unplugged. The launch
// makes hotplugPorts root ports; a volume keeps its port for its life on
// the instance. The boot volume sits on pcie.0 with bootindex 0.

// hotplugPorts is the number of PCIe root ports for data volumes, and so
// the number of data volumes a VM can have.
const hotplugPorts = 8

// detachTimeout bounds the wait for the guest to release a device.
const detachTimeout = 60 * time.Second

// attachedVolume is a volume in volumes.json with its root port.
type attachedVolume struct {
	driver.Volume
	Port int `json:"port"`
}

func (d *Driver) volumesPath(id string) string {
	return filepath.Join(d.instanceDir(id), "volumes.json")
}

func (d *Driver) readVolumes(id string) ([]attachedVolume, error) {
	b, err := os.ReadFile(d.volumesPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vols []attachedVolume
	if err := json.Unmarshal(b, &vols); err != nil {
		return nil, fmt.Errorf("%s: %w", d.volumesPath(id), err)
	}
	return vols, nil
}

func (d *Driver) writeVolumes(id string, vols []attachedVolume) error {
	if vols == nil {
		vols = []attachedVolume{}
	}
	return instancedir.WriteJSON(d.volumesPath(id), vols)
}

// initVolumes records the spec's volumes at Create, each data volume on
// its own port.
func (d *Driver) initVolumes(spec driver.Spec) error {
	if fileExists(d.volumesPath(spec.ID)) {
		return nil
	}
	var vols []attachedVolume
	for _, v := range spec.Volumes {
		port := -1
		if !v.Boot {
			port = freePort(vols)
			if port < 0 {
				return fmt.Errorf("volumes: at most %d data volumes", hotplugPorts)
			}
		}
		vols = append(vols, attachedVolume{Volume: v, Port: port})
	}
	return d.writeVolumes(spec.ID, vols)
}

func freePort(vols []attachedVolume) int {
	for p := range hotplugPorts {
		if !slices.ContainsFunc(vols, func(v attachedVolume) bool { return v.Port == p }) {
			return p
		}
	}
	return -1
}

// nodeName returns the node-name of a volume's blockdev.
func nodeName(v driver.Volume) (string, error) {
	var node struct {
		Name string `json:"node-name"`
	}
	if err := json.Unmarshal([]byte(v.BlockdevJSON), &node); err != nil || node.Name == "" {
		return "", fmt.Errorf("volume %s: blockdev without a node-name", v.ID)
	}
	return node.Name, nil
}

// deviceID is the QEMU device id of a volume's disk.
func deviceID(volumeID string) string { return "vd-" + volumeID }

// portID is the id of hot-plug root port i.
func portID(i int) string { return fmt.Sprintf("hp%d", i) }

// usesRootPorts reports whether the machine plugs disks into PCIe root
// ports (q35, aarch64 virt) rather than the legacy PCI bus (pc).
func (l launch) usesRootPorts() bool { return l.arch == "arm64" || l.machine == "q35" }

// volumeArgs returns the -object, -blockdev and -device arguments of the
// launch's volumes and its hot-plug ports.
func (l launch) volumeArgs() ([]string, error) {
	var a []string
	if l.usesRootPorts() {
		for i := range hotplugPorts {
			a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=%s,chassis=%d", portID(i), 16+i))
		}
	}
	for _, v := range l.volumes {
		node, err := nodeName(v.Volume)
		if err != nil {
			return nil, err
		}
		for _, o := range v.Objects {
			a = append(a, "-object", o)
		}
		dev := fmt.Sprintf("virtio-blk-pci,drive=%s,id=%s,serial=%s", node, deviceID(v.ID), v.ID)
		switch {
		case v.Boot:
			if l.kernel == "" {
				dev += ",bootindex=0"
			}
		case l.usesRootPorts():
			if v.Port < 0 || v.Port >= hotplugPorts {
				return nil, fmt.Errorf("volume %s: port %d", v.ID, v.Port)
			}
			dev += ",bus=" + portID(v.Port)
		}
		a = append(a, "-blockdev", v.BlockdevJSON, "-device", dev)
	}
	return a, nil
}

// secretsToFiles returns vols with the data of every secret object (a
// Ceph key) moved into a file of dir (0600) that the object reads
// instead: a command line is readable by every local user, the instance
// directory is not. Hot-plug hands the same objects to QEMU over QMP,
// where the data never leaves the agent and QEMU.
func secretsToFiles(dir string, vols []attachedVolume) ([]attachedVolume, error) {
	out := slices.Clone(vols)
	for i := range out {
		objs := slices.Clone(out[i].Objects)
		for j, o := range objs {
			parts := strings.Split(o, ",")
			if len(parts) == 0 || parts[0] != "secret" {
				continue
			}
			id := ""
			for _, kv := range parts[1:] {
				if v, ok := strings.CutPrefix(kv, "id="); ok {
					id = v
				}
			}
			for k, kv := range parts {
				data, ok := strings.CutPrefix(kv, "data=")
				if !ok {
					continue
				}
				if id == "" || strings.ContainsAny(id, "/.") {
					return nil, fmt.Errorf("volume %s: secret object without a usable id", out[i].ID)
				}
				file := filepath.Join(dir, "secret-"+id)
				if err := atomicfile.WriteFile(file, []byte(data), 0o600); err != nil {
					return nil, fmt.Errorf("volume %s: %w", out[i].ID, err)
				}
				parts[k] = "file=" + file
			}
			objs[j] = strings.Join(parts, ",")
		}
		out[i].Objects = objs
	}
	return out, nil
}

// AttachedVolumes implements driver.VolumeAttacher.
func (d *Driver) AttachedVolumes(_ context.Context, id string) ([]driver.Volume, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	vols, err := d.readVolumes(id)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Volume, len(vols))
	for i, v := range vols {
		out[i] = v.Volume
	}
	return out, nil
}

// AttachVolume records v and, while the VM runs, hot-plugs it: the
// blockdev, then a virtio-blk device on the volume's root port.
func (d *Driver) AttachVolume(ctx context.Context, id string, v driver.Volume) error {
	if err := checkID(id); err != nil {
		return err
	}
	if v.Boot {
		return fmt.Errorf("attach volume %s to vm %s: a boot volume is attached at create", v.ID, id)
	}
	node, err := nodeName(v)
	if err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	vols, err := d.readVolumes(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vols, func(a attachedVolume) bool { return a.ID == v.ID })
	if i < 0 {
		port := freePort(vols)
		if port < 0 {
			return fmt.Errorf("attach volume %s to vm %s: at most %d data volumes", v.ID, id, hotplugPorts)
		}
		vols = append(vols, attachedVolume{Volume: v, Port: port})
		if err := d.writeVolumes(id, vols); err != nil {
			return err
		}
		i = len(vols) - 1
	}
	if livePid(d.paths(id), id) == 0 {
		return nil // the next start attaches it
	}
	av := vols[i]
	err = d.withQMP(ctx, id, func(ctx context.Context, c *qmpConn) error {
		for _, o := range av.Objects {
			if err := addObject(ctx, c, o); err != nil {
				return err
			}
		}
		var bd map[string]any
		if err := json.Unmarshal([]byte(av.BlockdevJSON), &bd); err != nil {
			return fmt.Errorf("volume %s: blockdev: %w", av.ID, err)
		}
		if err := c.execute(ctx, "blockdev-add", bd, nil); err != nil && !isQMPDesc(err, "Duplicate", "already") {
			return err
		}
		args := map[string]any{"driver": "virtio-blk-pci", "drive": node, "id": deviceID(av.ID), "serial": av.ID}
		if d.usesRootPorts() {
			args["bus"] = portID(av.Port)
		}
		if err := c.execute(ctx, "device_add", args, nil); err != nil && !isQMPDesc(err, "Duplicate", "already") {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("attach volume %s to vm %s: %w", v.ID, id, err)
	}
	d.log.Info("volume attached", "id", id, "volume", v.ID)
	return nil
}

// objectArgs returns the object-add arguments of an -object given as
// text: its type first (or as qom-type=), then key=value pairs.
func objectArgs(o string) map[string]any {
	args := map[string]any{}
	for i, kv := range strings.Split(o, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if i == 0 && !ok {
			k, v = "qom-type", kv
		}
		args[k] = v
	}
	return args
}

// addObject adds one -object given as text through object-add.
func addObject(ctx context.Context, c *qmpConn, o string) error {
	args := objectArgs(o)
	if err := c.execute(ctx, "object-add", args, nil); err != nil && !isQMPDesc(err, "Duplicate", "already") {
		return err
	}
	return nil
}

// DetachVolume unplugs the volume's device from a running VM, waits for
// the guest to release it (DEVICE_DELETED), removes the blockdev and
// forgets the volume.
func (d *Driver) DetachVolume(ctx context.Context, id, volumeID string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := d.instLocks.Lock(id)
	defer unlock()
	vols, err := d.readVolumes(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vols, func(a attachedVolume) bool { return a.ID == volumeID })
	if i < 0 {
		return nil
	}
	av := vols[i]
	if av.Boot {
		return fmt.Errorf("detach volume %s from vm %s: the boot volume stays", volumeID, id)
	}
	if livePid(d.paths(id), id) != 0 {
		if err := d.unplug(ctx, id, av); err != nil {
			return fmt.Errorf("detach volume %s from vm %s: %w", volumeID, id, err)
		}
	}
	vols = slices.Delete(vols, i, i+1)
	if err := d.writeVolumes(id, vols); err != nil {
		return err
	}
	d.log.Info("volume detached", "id", id, "volume", volumeID)
	return nil
}

func (d *Driver) unplug(ctx context.Context, id string, av attachedVolume) error {
	node, err := nodeName(av.Volume)
	if err != nil {
		return err
	}
	unlock := d.qmpLocks.Lock(id)
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, detachTimeout)
	defer cancel()
	c, err := dialQMP(ctx, d.paths(id).qmp)
	if err != nil {
		return err
	}
	defer c.Close()
	dev := deviceID(av.ID)
	err = c.execute(ctx, "device_del", map[string]any{"id": dev}, nil)
	switch {
	case err != nil && isQMPDesc(err, "not found"):
	case err != nil:
		return err
	default:
		if err := waitDeviceDeleted(ctx, c, dev); err != nil {
			return err
		}
	}
	if err := c.execute(ctx, "blockdev-del", map[string]any{"node-name": node}, nil); err != nil && !isQMPDesc(err, "Failed to find", "Cannot find", "not found") {
		return err
	}
	// The volume's objects (a Ceph key) go with it, and their files.
	for _, o := range av.Objects {
		oid, _ := objectArgs(o)["id"].(string)
		if oid == "" {
			continue
		}
		if err := c.execute(ctx, "object-del", map[string]any{"id": oid}, nil); err != nil && !isQMPDesc(err, "not found", "Failed to find", "Cannot find") {
			return err
		}
		if !strings.ContainsAny(oid, "/.") {
			os.Remove(filepath.Join(d.instanceDir(id), "secret-"+oid))
		}
	}
	return nil
}

// waitDeviceDeleted waits for the DEVICE_DELETED event of device dev, or
// until it is gone from the machine (the event may have come before).
func waitDeviceDeleted(ctx context.Context, c *qmpConn, dev string) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev := <-c.Events():
			if ev.Name != "DEVICE_DELETED" {
				continue
			}
			var data struct {
				Device string `json:"device"`
			}
			if json.Unmarshal(ev.Data, &data) == nil && data.Device == dev {
				return nil
			}
		case <-tick.C:
			var props []struct {
				Name string `json:"name"`
			}
			if err := c.execute(ctx, "qom-list", map[string]any{"path": "/machine/peripheral"}, &props); err == nil &&
				!slices.ContainsFunc(props, func(p struct {
					Name string `json:"name"`
				}) bool {
					return p.Name == dev
				}) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("the guest did not release %s: %w", dev, ctx.Err())
		}
	}
}

// isQMPDesc reports whether err is a QMP error whose description
// contains one of subs.
func isQMPDesc(err error, subs ...string) bool {
	var qe *QMPError
	if !errors.As(err, &qe) {
		return false
	}
	for _, s := range subs {
		if strings.Contains(qe.Desc, s) {
			return true
		}
	}
	return false
}

// usesRootPorts reports whether this driver's machines plug disks into
// PCIe root ports.
func (d *Driver) usesRootPorts() bool {
	return launch{arch: d.arch, machine: d.cfg.Machine}.usesRootPorts()
}

var _ driver.VolumeAttacher = (*Driver)(nil)

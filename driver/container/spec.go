package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/instancedir"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// Defaults of the generated runtime spec.
const (
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	cpuPeriod   = 100000 // µs
	pidsLimit   = 4096
	nofileLimit = 1024
)

// defaultCaps is Docker's default capability set less CAP_MKNOD (devices
// are the devices cgroup's and the host's business) and CAP_AUDIT_WRITE
// (the audit log is the host's), as Podman's. CAP_NET_RAW stays: ping
// programs such as busybox's need raw sockets.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
}

// maskedPaths and readonlyPaths are Docker's defaults.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// writeBundle writes the OCI bundle of spec: config.json and the files it
// bind-mounts, owned by the container's root. layers are the layer
// directories, lowest first; ids the container's id mapping.
func (d *Driver) writeBundle(spec driver.Spec, layers []string, ids idMap) error {
	p := d.paths(spec.ID)
	hostname := hostnameOf(spec)
	user, err := resolveUser(spec.Image.Config.User, lowerDirs(layers))
	if err != nil {
		return err
	}
	cfg, err := runtimeSpec(spec, p, user, ids)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.bundle, 0o700); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname)
	files := map[string]string{"hostname": hostname + "\n", "hosts": hosts}
	if len(spec.Nameservers) > 0 {
		files["resolv.conf"] = resolvConf(spec.Nameservers)
	}
	for name, content := range files {
		path := filepath.Join(p.bundle, name)
		if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
		if err := os.Lchown(path, ids.root(), ids.root()); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
	}
	if err := instancedir.WriteJSON(p.config, cfg); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// runtimeSpec builds the OCI runtime spec of an instance. With an id
// mapping the container gets a user namespace.
func runtimeSpec(spec driver.Spec, p instancePaths, user specs.User, ids idMap) (*specs.Spec, error) {
	args, err := processArgs(spec)
	if err != nil {
		return nil, err
	}
	cwd := spec.Image.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("image working directory %q is not absolute", cwd)
	}
	caps := append([]string(nil), defaultCaps...)
	nsNet := specs.LinuxNamespace{Type: specs.NetworkNamespace}
	if spec.NetNS != "" {
		if !filepath.IsAbs(spec.NetNS) {
			return nil, fmt.Errorf("network namespace path %q is not absolute", spec.NetNS)
		}
		nsNet.Path = spec.NetNS
	}
	res := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(pidsLimit))},
	}
	if spec.Resources.VCPUs > 0 {
		res.CPU = &specs.LinuxCPU{
			Period: ptr(uint64(cpuPeriod)),
			Quota:  ptr(int64(spec.Resources.VCPUs) * cpuPeriod),
		}
	}
	if spec.Resources.MemoryMiB > 0 {
		res.Memory = &specs.LinuxMemory{Limit: ptr(spec.Resources.MemoryMiB << 20)}
	}
	var sysctl map[string]string
	if spec.NetNS == "" {
		// The container's own network namespace: ICMP echo sockets for
		// its groups (ids of its user namespace, where it has one).
		sysctl = map[string]string{"net.ipv4.ping_group_range": pingGroupRange}
		if ids.enabled() {
			sysctl["net.ipv4.ping_group_range"] = fmt.Sprintf("0 %d", ids.Size-1)
		}
	}
	mounts := baseMounts(p)
	if ids.enabled() && spec.NetNS != "" {
		// sysfs can only be mounted by the owner of the network
		// namespace, and the one joined belongs to the host. The
		// container gets an empty read-only /sys (with its cgroups)
		// rather than the host's sysfs.
		for i, m := range mounts {
			if m.Type == "sysfs" {
				mounts[i] = specs.Mount{Destination: "/sys", Type: "tmpfs", Source: "sysfs",
					Options: []string{"nosuid", "noexec", "nodev", "ro", "mode=755", "size=64k"}}
			}
		}
	}
	mounts = append(mounts, volumeMounts(p, spec.Volumes)...)
	if len(spec.Nameservers) > 0 {
		mounts = append(mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind",
			Source: filepath.Join(p.bundle, "resolv.conf"), Options: []string{"rbind", "rprivate", "ro"}})
	}
	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		nsNet,
	}
	if ids.enabled() {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	}
	return &specs.Spec{
		Version:  ociVersion,
		Hostname: hostnameOf(spec),
		Root:     &specs.Root{Path: p.rootfs},
		Process: &specs.Process{
			Args: args,
			Env:  containerEnv(spec),
			Cwd:  cwd,
			User: user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofileLimit, Soft: nofileLimit}},
			NoNewPrivileges: true,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath:   "/ouro/" + spec.ID,
			Resources:     res,
			Namespaces:    namespaces,
			UIDMappings:   ids.specMappings(),
			GIDMappings:   ids.specMappings(),
			Seccomp:       defaultSeccomp(),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}, nil
}

// processArgs is spec.Command, else the image's entrypoint and cmd.
func processArgs(spec driver.Spec) ([]string, error) {
	if len(spec.Command) > 0 {
		return spec.Command, nil
	}
	args := append(append([]string(nil), spec.Image.Config.Entrypoint...), spec.Image.Config.Cmd...)
	if len(args) == 0 {
		return nil, errors.New("no command: the instance has no command and the image no entrypoint or cmd")
	}
	return args, nil
}

// containerEnv is the image's environment overridden by the instance's,
// with a default PATH and HOSTNAME.
func containerEnv(spec driver.Spec) []string {
	var env []string
	index := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			return
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	for _, kv := range spec.Image.Config.Env {
		set(kv)
	}
	if _, ok := index["PATH"]; !ok {
		set("PATH=" + defaultPath)
	}
	set("HOSTNAME=" + hostnameOf(spec))
	for _, kv := range spec.Env {
		set(kv)
	}
	return env
}

// lookupEnv finds key in a KEY=VALUE list.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func hostnameOf(spec driver.Spec) string {
	if spec.Name != "" {
		return spec.Name
	}
	return spec.ID
}

// resolveUser turns the image's "user[:group]" into ids. Numeric parts
// are used as they are; names are looked up in the image's /etc/passwd
// and /etc/group (from the top-most layer that has them). lowers are the
// layer directories, top-most first.
func resolveUser(s string, lowers []string) (specs.User, error) {
	if s == "" {
		return specs.User{}, nil
	}
	name, group, hasGroup := strings.Cut(s, ":")
	var u specs.User
	uid, err := strconv.ParseUint(name, 10, 32)
	if err == nil {
		u.UID = uint32(uid)
		// A numeric user's primary group comes from passwd when known.
		if e, ok, err := lookupDB(lowers, "etc/passwd", func(f []string) bool { return f[2] == name }); err != nil {
			return u, err
		} else if ok && len(e) > 3 {
			if gid, err := strconv.ParseUint(e[3], 10, 32); err == nil {
				u.GID = uint32(gid)
			}
		}
	} else {
		e, ok, err := lookupDB(lowers, "etc/passwd", func(f []string) bool { return f[0] == name })
		if err != nil {
			return u, err
		}
		if !ok || len(e) < 4 {
			return u, fmt.Errorf("image user %q: no such user in the image's /etc/passwd", s)
		}
		uid, err1 := strconv.ParseUint(e[2], 10, 32)
		gid, err2 := strconv.ParseUint(e[3], 10, 32)
		if err1 != nil || err2 != nil {
			return u, fmt.Errorf("image user %q: bad /etc/passwd entry", s)
		}
		u.UID, u.GID = uint32(uid), uint32(gid)
	}
	if !hasGroup {
		return u, nil
	}
	if gid, err := strconv.ParseUint(group, 10, 32); err == nil {
		u.GID = uint32(gid)
		return u, nil
	}
	e, ok, err := lookupDB(lowers, "etc/group", func(f []string) bool { return f[0] == group })
	if err != nil {
		return u, err
	}
	if !ok || len(e) < 3 {
		return u, fmt.Errorf("image user %q: no such group in the image's /etc/group", s)
	}
	gid, err := strconv.ParseUint(e[2], 10, 32)
	if err != nil {
		return u, fmt.Errorf("image user %q: bad /etc/group entry", s)
	}
	u.GID = uint32(gid)
	return u, nil
}

// lookupDB finds the first line of a colon-separated database file
// (etc/passwd, etc/group) that match accepts, reading the file from the
// top-most layer that has it. Symlinks are never followed: the file and
// its directory must be what they claim.
func lookupDB(lowers []string, rel string, match func([]string) bool) ([]string, bool, error) {
	for _, layer := range lowers {
		dir := filepath.Join(layer, filepath.Dir(rel))
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		fi, err := os.Lstat(filepath.Join(layer, rel))
		if err != nil || !fi.Mode().IsRegular() {
			continue // absent, whited out (a device) or not a plain file
		}
		f, err := os.OpenFile(filepath.Join(layer, rel), os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, false, fmt.Errorf("read image %s: %w", rel, err)
		}
		defer f.Close()
		sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 3 && match(fields) {
				return fields, true, nil
			}
		}
		return nil, false, sc.Err()
	}
	return nil, false, nil
}

func ptr[T any](v T) *T { return &v }

// baseMounts are the mounts every container gets.
func baseMounts(p instancePaths) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(p.bundle, "hostname"), Options: []string{"rbind", "rprivate", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(p.bundle, "hosts"), Options: []string{"rbind", "rprivate", "ro"}},
	}
}

// resolvConf renders /etc/resolv.conf for nameservers.
func resolvConf(nameservers []string) string {
	var b strings.Builder
	for _, ns := range nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	return b.String()
}

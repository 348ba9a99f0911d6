package container

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

func TestProcessArgs(t *testing.T) {
	tests := []struct {
		name    string
		spec    driver.Spec
		want    []string
		wantErr bool
	}{
		{"command wins", driver.Spec{Command: []string{"a"}, Image: api.ImageSpec{Config: api.ImageConfig{Entrypoint: []string{"e"}, Cmd: []string{"c"}}}}, []string{"a"}, false},
		{"entrypoint and cmd", driver.Spec{Image: api.ImageSpec{Config: api.ImageConfig{Entrypoint: []string{"e", "-x"}, Cmd: []string{"c"}}}}, []string{"e", "-x", "c"}, false},
		{"cmd only", driver.Spec{Image: api.ImageSpec{Config: api.ImageConfig{Cmd: []string{"c"}}}}, []string{"c"}, false},
		{"nothing", driver.Spec{}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(tc.spec)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("processArgs = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	tests := []struct {
		name string
		spec driver.Spec
		want []string
	}{
		{"defaults", driver.Spec{ID: "i1"}, []string{"PATH=" + defaultPath, "HOSTNAME=i1"}},
		{"image path kept, spec overrides", driver.Spec{
			Name:  "web",
			Image: api.ImageSpec{Config: api.ImageConfig{Env: []string{"PATH=/x", "A=1"}}},
			Env:   []string{"A=2", "B=3"},
		}, []string{"PATH=/x", "A=2", "HOSTNAME=web", "B=3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerEnv(tc.spec); !slices.Equal(got, tc.want) {
				t.Errorf("containerEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestResolveUser(t *testing.T) {
	top, bottom := t.TempDir(), t.TempDir()
	write := func(root, rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The top layer's passwd hides the bottom one's.
	write(bottom, "etc/passwd", "app:x:1:1::/:/bin/sh\n")
	write(top, "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
	write(bottom, "etc/group", "staff:x:50:\n")
	lowers := []string{top, bottom}
	tests := []struct {
		user    string
		want    specs.User
		wantErr bool
	}{
		{"", specs.User{}, false},
		{"1000", specs.User{UID: 1000, GID: 1001}, false},
		{"1234", specs.User{UID: 1234}, false},
		{"1234:5", specs.User{UID: 1234, GID: 5}, false},
		{"app", specs.User{UID: 1000, GID: 1001}, false},
		{"app:staff", specs.User{UID: 1000, GID: 50}, false},
		{"nobody", specs.User{}, true},
		{"app:nogroup", specs.User{}, true},
	}
	for _, tc := range tests {
		got, err := resolveUser(tc.user, lowers)
		if (err != nil) != tc.wantErr || (!tc.wantErr && (got.UID != tc.want.UID || got.GID != tc.want.GID)) {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v (error %v)", tc.user, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRuntimeSpec(t *testing.T) {
	d, err := New(Config{Dir: "/var/lib/ouro/containers", Blobs: &blobMap{}})
	if err != nil {
		t.Fatal(err)
	}
	spec := driver.Spec{
		ID: "abc", Name: "web", Command: []string{"run"},
		Image:     api.ImageSpec{Config: api.ImageConfig{WorkingDir: "/srv"}},
		Resources: api.Resources{VCPUs: 2, MemoryMiB: 512},
		NetNS:     "/run/netns/n1",
	}
	s, err := runtimeSpec(spec, d.paths("abc"), specs.User{UID: 5}, d.idMap)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Path != "/var/lib/ouro/containers/instances/abc/rootfs" || s.Hostname != "web" || s.Process.Cwd != "/srv" || s.Process.User.UID != 5 {
		t.Errorf("root %q hostname %q cwd %q user %+v", s.Root.Path, s.Hostname, s.Process.Cwd, s.Process.User)
	}
	if !s.Process.NoNewPrivileges || len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 1024 {
		t.Errorf("process limits: nnp %v rlimits %+v", s.Process.NoNewPrivileges, s.Process.Rlimits)
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_BIND_SERVICE") || slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || slices.Contains(s.Process.Capabilities.Bounding, "CAP_MKNOD") {
		t.Errorf("capabilities %v: want Docker's defaults less MKNOD and AUDIT_WRITE", s.Process.Capabilities.Bounding)
	}
	r := s.Linux.Resources
	if *r.CPU.Quota != 200000 || *r.CPU.Period != 100000 || *r.Memory.Limit != 512<<20 || r.Pids.Limit == nil || *r.Pids.Limit != 4096 {
		t.Errorf("resources: quota %d period %d memory %d pids %v", *r.CPU.Quota, *r.CPU.Period, *r.Memory.Limit, r.Pids.Limit)
	}
	if s.Linux.CgroupsPath != "/ouro/abc" {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	var netns specs.LinuxNamespace
	types := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		types[ns.Type] = true
		if ns.Type == specs.NetworkNamespace {
			netns = ns
		}
	}
	if len(types) != 6 || !types[specs.UserNamespace] || netns.Path != "/run/netns/n1" {
		t.Errorf("namespaces %+v: want pid ipc uts mount user and network joining /run/netns/n1", s.Linux.Namespaces)
	}
	wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: DefaultHostIDBase, Size: 65536}}
	if !slices.Equal(s.Linux.UIDMappings, wantMap) || !slices.Equal(s.Linux.GIDMappings, wantMap) {
		t.Errorf("id mappings %+v %+v, want %+v", s.Linux.UIDMappings, s.Linux.GIDMappings, wantMap)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Errorf("seccomp %+v: want the default profile", s.Linux.Seccomp)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("masked or read-only paths missing")
	}
	spec.Resources = api.Resources{}
	spec.NetNS = ""
	s, err = runtimeSpec(spec, d.paths("abc"), specs.User{}, d.idMap)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Resources.CPU != nil || s.Linux.Resources.Memory != nil {
		t.Error("zero resources must mean no CPU or memory limit")
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path != "" {
			t.Errorf("without NetNS the network namespace must be new, got path %q", ns.Path)
		}
	}
}

func TestLowerDirs(t *testing.T) {
	got := lowerDirs([]string{"a", "b", "a", "c"})
	if want := []string{"c", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("lowerDirs = %q, want %q", got, want)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/a\040b\011c`); got != "/a b\tc" {
		t.Errorf("unescape = %q", got)
	}
}

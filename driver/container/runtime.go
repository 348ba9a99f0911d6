package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// The OCI runtime: runc or crun (Config.Runtime). They take the same
// command line, but differ where it matters for user namespaces: runc
// before 1.2 enters a container's user namespace before its network
// namespace when it execs into it, and then lacks the right to enter a
// network namespace that belongs to the host (runc issue 4390); crun
// enters the network namespace first. So with runc 1.1 (Debian 12) a
// container joined to the agent's network namespace can run, but not be
// exec'd into, in a user namespace; with crun 1.8 (Debian 12 too) it can.
//
// The runtime that started a container is recorded in its instance
// directory (<dir>/runtime), since only that runtime knows the container
// (each keeps its own state under /run): a driver reconfigured from runc
// to crun still stops and execs into the containers runc started.
// Containers started before the record existed were started by runc.

// ociVersion is the runtime spec version of the bundles: the fields they
// use are all in 1.0.2, and crun 1.8 refuses any version but 1.0.x.
const ociVersion = "1.0.2"

// legacyRuntime started the containers that have no runtime record.
const legacyRuntime = "runc"

// PreferredRuntime is the OCI runtime the agent uses: crun when it is
// installed and supports the host's cgroups, else runc. crun refuses a
// hybrid cgroup layout whose cgroup v2 hierarchy has controllers, which
// runc manages.
func PreferredRuntime() string {
	if _, err := exec.LookPath("crun"); err == nil && crunSupportsCgroups("/sys/fs/cgroup") {
		return "crun"
	}
	return "runc"
}

// crunSupportsCgroups reports whether crun can run containers with the
// cgroups mounted at root: pure cgroup v2, pure v1, or hybrid with no
// controller on the v2 hierarchy (root/unified).
func crunSupportsCgroups(root string) bool {
	data, err := os.ReadFile(root + "/unified/cgroup.controllers")
	if errors.Is(err, os.ErrNotExist) {
		return true // not hybrid
	}
	return err == nil && len(bytes.TrimSpace(data)) == 0
}

// runtimeInfo is what `<runtime> --version` says: its name ("runc",
// "crun") and version.
type runtimeInfo struct {
	name         string
	major, minor int
}

func (i runtimeInfo) String() string { return fmt.Sprintf("%s %d.%d", i.name, i.major, i.minor) }

// parseRuntimeVersion reads the first line of `<runtime> --version`
// ("runc version 1.1.5+ds1", "crun version 1.8.1"); the zero value if it
// is neither.
func parseRuntimeVersion(out string) runtimeInfo {
	line, _, _ := strings.Cut(out, "\n")
	name, rest, ok := strings.Cut(line, " version ")
	if !ok || (name != "runc" && name != "crun") {
		return runtimeInfo{}
	}
	i := runtimeInfo{name: name}
	if n, _ := fmt.Sscanf(rest, "%d.%d", &i.major, &i.minor); n != 2 {
		return runtimeInfo{}
	}
	return i
}

// execsIntoJoinedNetNS reports whether the runtime can exec into a
// container with a user namespace that joined a network namespace of the
// host: crun (tested from 1.8), runc from 1.2.
func (i runtimeInfo) execsIntoJoinedNetNS() bool {
	switch i.name {
	case "crun":
		return i.major > 1 || i.major == 1 && i.minor >= 8
	case "runc":
		return i.major > 1 || i.major == 1 && i.minor >= 2
	}
	return false
}

// runtimeInfo returns what the configured runtime says of itself, asked
// once.
func (d *Driver) runtimeInfo(ctx context.Context) runtimeInfo {
	d.runtimeInfoOnce.Do(func() {
		out, err := exec.CommandContext(ctx, d.runtime.path, "--version").Output()
		if err != nil {
			d.log.Warn("OCI runtime version unknown", "runtime", d.runtime.path, "err", err)
			return
		}
		d.runtimeVersion = parseRuntimeVersion(string(out))
	})
	return d.runtimeVersion
}

// runtimeOf returns the runtime that started the container of p (the
// configured one for a container never started).
func (d *Driver) runtimeOf(p instancePaths) runc {
	data, err := os.ReadFile(p.runtime)
	switch {
	case err == nil && len(bytes.TrimSpace(data)) > 0:
		return runc{path: string(bytes.TrimSpace(data)), root: d.runtime.root}
	case errors.Is(err, os.ErrNotExist) && fileExists(p.pidFile):
		return runc{path: legacyRuntime, root: d.runtime.root}
	default:
		return d.runtime
	}
}

// recordRuntime records that the runtime at path starts the container
// of p.
func recordRuntime(p instancePaths, path string) error {
	if err := atomicfile.WriteFile(p.runtime, []byte(path+"\n"), 0o600); err != nil {
		return fmt.Errorf("record runtime: %w", err)
	}
	return nil
}

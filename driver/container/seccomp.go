package container

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The seccomp filter every container gets, in the spirit of Docker's
// default profile: system calls that reach kernel code a container has
// no business with (keys, BPF, mounts, module loading, kexec, tracing,
// namespaces) fail with EPERM, everything else is allowed. It is a deny
// list rather than Docker's allow list so that new system calls of new C
// libraries keep working; the calls denied are the ones behind most
// container escapes. runc installs it just before it executes the
// container's process, for `runc exec` too.

// deniedSyscalls fail with EPERM. Names a architecture lacks (vm86 on
// arm64) are skipped by runc.
var deniedSyscalls = []string{
	// Keys: the kernel keyring is not namespaced.
	"keyctl", "add_key", "request_key",
	// BPF programs and performance counters.
	"bpf", "perf_event_open",
	// Mounts, old and new API.
	"mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	// Namespaces: unshare and setns as a whole (Docker allows them only
	// with CAP_SYS_ADMIN); clone is filtered by flags below.
	"unshare", "setns",
	// The kernel itself: modules, kexec, reboot, swap, clocks, quotas.
	"init_module", "finit_module", "delete_module", "create_module",
	"kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	"acct", "settimeofday", "clock_settime", "clock_adjtime", "stime",
	"quotactl", "quotactl_fd", "syslog", "nfsservctl", "uselib",
	"iopl", "ioperm", "vm86", "vm86old", "lookup_dcookie", "sysfs",
	"_sysctl", "ustat", "get_kernel_syms", "query_module",
	// Other processes' memory, file handles, page faults.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	"open_by_handle_at", "name_to_handle_at", "userfaultfd",
	"fanotify_init",
	// io_uring bypasses seccomp for the operations it runs.
	"io_uring_setup", "io_uring_enter", "io_uring_register",
}

// cloneNamespaceFlags make clone create namespaces; a clone with any of
// them fails with EPERM. CLONE_NEWTIME is missing on purpose: in clone's
// flags 0x80 is part of the exit signal, and only unshare and clone3 take
// it.
var cloneNamespaceFlags = []uint64{
	unix.CLONE_NEWNS, unix.CLONE_NEWCGROUP, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC,
	unix.CLONE_NEWUSER, unix.CLONE_NEWPID, unix.CLONE_NEWNET,
}

// seccompArchitectures are the ABIs a process of this host may use: the
// native one and its 32-bit compatibility ABIs. A system call through any
// other ABI is refused by the filter, so the deny list cannot be bypassed
// through an ABI it does not know.
func seccompArchitectures(goarch string) []specs.Arch {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	default:
		return nil // runc's native architecture only
	}
}

// defaultSeccomp returns the default filter for the host's architecture.
func defaultSeccomp() *specs.LinuxSeccomp {
	return seccompProfile(runtime.GOARCH)
}

// seccompProfile returns the default filter for goarch.
func seccompProfile(goarch string) *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArchitectures(goarch),
		Syscalls: []specs.LinuxSyscall{
			{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
			// clone3 passes its flags in memory, where seccomp cannot look:
			// ENOSYS makes C libraries fall back to clone, whose flags it
			// checks.
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	// One rule per flag: the conditions of one rule must all hold, the
	// rules of one call are alternatives. The flags are clone's first
	// argument on x86 and arm (s390's second, not a target here).
	for _, flag := range cloneNamespaceFlags {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
		})
	}
	return s
}

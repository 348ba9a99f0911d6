// Command probe makes one system call that a container's seccomp filter
// should refuse and prints the outcome: "ok" or the error's name (EPERM).
// The container tests build it statically and run it in a container.
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe keyctl|add_key|bpf|unshare|clone|clone3|mount|ptrace|setns")
		os.Exit(2)
	}
	var errno syscall.Errno
	switch os.Args[1] {
	case "keyctl": // KEYCTL_GET_KEYRING_ID of the session keyring
		sessionKeyring := -3
		_, _, errno = syscall.Syscall(unix.SYS_KEYCTL, 0, uintptr(sessionKeyring), 0)
	case "add_key":
		typ, desc := []byte("user\x00"), []byte("probe\x00")
		processKeyring := -2
		_, _, errno = syscall.Syscall6(unix.SYS_ADD_KEY, uintptr(unsafe.Pointer(&typ[0])), uintptr(unsafe.Pointer(&desc[0])), 0, 0, uintptr(processKeyring), 0)
	case "bpf": // BPF_MAP_CREATE of an array map
		attr := [5]uint32{2, 4, 4, 1, 0}
		_, _, errno = syscall.Syscall(unix.SYS_BPF, 0, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	case "unshare":
		errno = errOf(syscall.Unshare(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS))
	case "clone": // fork into a new user namespace; the child exits at once
		r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, syscall.CLONE_NEWUSER|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if e == 0 && r == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
		}
		errno = e
	case "clone3": // struct clone_args with flags CLONE_NEWUSER
		args := [11]uint64{syscall.CLONE_NEWUSER, 0, 0, 0, uint64(syscall.SIGCHLD)}
		r, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
		if e == 0 && r == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
		}
		errno = e
	case "mount":
		errno = errOf(syscall.Mount("none", "/tmp", "tmpfs", 0, ""))
	case "ptrace":
		_, _, errno = syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
	case "setns":
		f, err := os.Open("/proc/self/ns/uts")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		_, _, errno = syscall.Syscall(unix.SYS_SETNS, f.Fd(), 0, 0)
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown call %q\n", os.Args[1])
		os.Exit(2)
	}
	if errno == 0 {
		fmt.Println("ok")
		return
	}
	fmt.Println(errnoName[errno])
}

func errOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}

var errnoName = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOSYS: "ENOSYS", syscall.EACCES: "EACCES",
	syscall.EINVAL: "EINVAL", syscall.EFAULT: "EFAULT", syscall.ENOENT: "ENOENT",
}

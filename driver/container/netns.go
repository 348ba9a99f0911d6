package container

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// pingGroupRange lets every group open ICMP echo sockets, for ping
// programs that use them where raw sockets are not allowed (a container
// in a user namespace has no CAP_NET_RAW over the host's network
// namespace it joined, nor does a process that is not root).
const pingGroupRange = "0 2147483647"

// prepareJoinedNetNS sets what a container needs of a network namespace
// it joins, which belongs to the host: ICMP echo sockets for everyone
// and, for a container in a user namespace (whose root has no privilege
// over that namespace), ports below 1024 for everyone. Only the
// container lives in the namespace.
func prepareJoinedNetNS(nsPath string, ids idMap) error {
	settings := map[string]string{"net/ipv4/ping_group_range": pingGroupRange}
	if ids.enabled() {
		settings["net/ipv4/ip_unprivileged_port_start"] = "0"
	}
	return netnsSysctls(nsPath, settings)
}

// netnsSysctls writes sysctls (paths below /proc/sys) of the network
// namespace at nsPath. It enters the namespace on a thread of its own,
// which is never unlocked: the thread ends with its goroutine instead of
// going back to the runtime in a foreign namespace.
func netnsSysctls(nsPath string, settings map[string]string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			ns, err := os.Open(nsPath)
			if err != nil {
				return err
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter %s: %w", nsPath, err)
			}
			for name, value := range settings {
				// /proc/sys/net is the network namespace of the thread
				// that opens it.
				if err := os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("network namespace sysctls: %w", err)
	}
	return nil
}

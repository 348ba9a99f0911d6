package daemon

import (
	"log/slog"
	"os/exec"
	"strings"
)

// agentModules are the kernel modules an agent uses that nothing loads on
// demand before it needs them: overlay (the container driver looks for it
// in /proc/filesystems, before any mount would load it) and br_netfilter
// (a router namespace's net.bridge sysctls exist only once it is
// loaded). Bridges, veth pairs, VXLAN and nftables load their own.
var agentModules = []string{"overlay", "br_netfilter"}

// loadModules asks modprobe for agentModules, as a freshly booted host
// (a cloud image, a VM of the cloud) has neither loaded. It is best
// effort: on a kernel with them built in, or without modprobe, the
// drivers' and the network's own checks say what is missing.
func loadModules(log *slog.Logger) {
	modprobe, err := exec.LookPath("modprobe")
	if err != nil {
		for _, p := range []string{"/usr/sbin/modprobe", "/sbin/modprobe"} {
			if _, err := exec.LookPath(p); err == nil {
				modprobe = p
				break
			}
		}
	}
	if modprobe == "" {
		log.Debug("no modprobe: kernel modules are not loaded", "modules", agentModules)
		return
	}
	for _, m := range agentModules {
		if out, err := exec.Command(modprobe, m).CombinedOutput(); err != nil {
			log.Debug("kernel module not loaded", "module", m, "err", err, "output", strings.TrimSpace(string(out)))
		}
	}
}

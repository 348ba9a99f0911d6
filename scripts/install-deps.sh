#!/usr/bin/env bash
# Installs the Debian packages Ouroboros needs to run and to test.
# Safe to run again: it installs only what is missing.
set -euo pipefail

# Run time: containers, images, networking (dnsmasq for DHCP and DNS on private networks).
# The agent runs containers with crun where it can (crun lets containers on its networks
# have a user namespace, Debian 12's runc 1.1 does not), else with runc.
RUNTIME_PKGS=(runc crun busybox-static iproute2 nftables dnsmasq-base ca-certificates)
# Load balancers: HAProxy in a namespace per load balancer per host, keepalived
# (VRRP) moving the virtual address between two load balancer hosts.
RUNTIME_PKGS+=(haproxy keepalived)
# Tests: a real external etcd for the external-store test, skopeo for OCI fixtures;
# for the Debian cloud-init test image (internal/testimage) debootstrap, mkfs.ext4, depmod,
# qemu-img, the host's Debian kernel, genisoimage for NoCloud seeds and QEMU to boot it.
TEST_PKGS=(etcd-server etcd-client skopeo debootstrap e2fsprogs kmod)
# The web console's end-to-end tests and benchmarks drive a headless Chromium.
TEST_PKGS+=(chromium)
# `ouro bootstrap` is tested against sshd run by the tests in namespaces.
TEST_PKGS+=(openssh-server openssh-client)
# The EC2-compatible API's end-to-end test drives Debian's AWS CLI.
TEST_PKGS+=(awscli)
# Volumes on Ceph: the test harness (internal/cephtest) runs a real cluster of
# one monitor, one manager and three OSDs on files; the ceph backend drives
# it with the rbd, ceph and rados tools (ceph-common) and QEMU's rbd driver
# (qemu-block-extra; containers get a loop device over qemu-storage-daemon,
# which comes with QEMU). rbd-nbd maps images on kernels with an nbd module.
# Hosts that use a ceph pool need ceph-common and qemu-block-extra (--ceph).
TEST_PKGS+=(ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra rbd-nbd)

# Virtual machines: QEMU for the host's architecture, qemu-img (overlays),
# genisoimage (cloud-init seeds); aarch64 disk images boot with UEFI. The
# tiny test VM image is built from the host's kernel package.
arch="$(dpkg --print-architecture)"
case "$arch" in
	arm64) RUNTIME_PKGS+=(qemu-system-arm qemu-efi-aarch64) ;;
	# The aarch64 path of the vm driver is tested under emulation (TCG) on
	# x86, with an arm64 kernel and busybox fetched from the Debian mirror:
	# xz unpacks the package index, gpgv and the archive keyring check it;
	# the UEFI disk boot needs the firmware and mtools to make a FAT disk.
	*)
		RUNTIME_PKGS+=(qemu-system-x86)
		TEST_PKGS+=(qemu-system-arm qemu-efi-aarch64 mtools xz-utils gpgv debian-archive-keyring)
		;;
esac
RUNTIME_PKGS+=(qemu-utils genisoimage)
# Building: `make` installs the web console's xterm.js with npm
# (console/package-lock.json) and embeds it. A nodejs from elsewhere (such
# as NodeSource) brings its own npm, which Debian's npm package would
# conflict with.
BUILD_PKGS=(nodejs)
command -v npm >/dev/null 2>&1 || BUILD_PKGS+=(npm)
TEST_PKGS+=("linux-image-$arch")

# Hosts that use a ceph storage pool (an existing Ceph cluster): the rbd and
# ceph tools and QEMU's rbd driver. `--ceph` adds them; `--test` has them.
CEPH_PKGS=(ceph-common qemu-block-extra)

want=("${RUNTIME_PKGS[@]}" "${BUILD_PKGS[@]}")
for arg in "$@"; do
	case "$arg" in
	--test) want+=("${TEST_PKGS[@]}") ;;
	--ceph) want+=("${CEPH_PKGS[@]}") ;;
	*)
		echo "install-deps: unknown option $arg (use --test, --ceph)" >&2
		exit 2
		;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: needs root to install Debian packages (run with sudo)" >&2
	exit 1
fi

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# openssh-server starts the system's sshd when installed; the tests run
# their own. Stop it only if this run installed it (a machine that had
# sshd before keeps it).
if [[ " ${missing[*]} " == *" openssh-server "* ]] && systemctl is-active --quiet ssh 2>/dev/null; then
	systemctl disable --now ssh >/dev/null 2>&1 || true
fi

# Debian's haproxy and keepalived packages start system services; ouro runs
# its own instances of both in namespaces and needs none on the host.
for svc in haproxy keepalived; do
	if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done

# Debian's ceph packages may enable the cluster's system services; the test
# harness runs its own daemons with their own data and needs none of them.
for svc in ceph.target ceph-mon.target ceph-mgr.target ceph-osd.target; do
	if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done

# The Debian etcd-server package starts a system etcd on 2379/2380; ouro's
# embedded etcd and the tests use their own ports and data, so stop it.
if systemctl is-active --quiet etcd 2>/dev/null; then
	systemctl disable --now etcd >/dev/null 2>&1 || true
fi

# crun refuses a hybrid cgroup layout (v1 controllers plus a v2 hierarchy
# at /sys/fs/cgroup/unified) while any controller sits on the v2 side, and
# the agent then falls back to runc, whose containers on private networks
# get no user namespace. Give such a controller a v1 hierarchy of its own,
# as the other controllers have; a controller in use on v2 cannot move,
# the mount fails, and the agent says which runtime it chose. Pure v2 (the
# default of Debian 12) and pure v1 hosts are left as they are.
if [ -r /sys/fs/cgroup/unified/cgroup.controllers ]; then
	for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
		case "$c" in *[!a-z_]*) continue ;; esac
		if ! mountpoint -q "/sys/fs/cgroup/$c"; then
			mkdir -p "/sys/fs/cgroup/$c"
			mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
				echo "install-deps: cannot give cgroup controller $c a v1 hierarchy; containers will run with runc" >&2
		fi
	done
fi

# Go: the toolchain named in go.mod is fetched through the Go module proxy
# by any go >= 1.21 (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		:
	else
		echo "install-deps: no Go toolchain found; install Go 1.21 or newer (https://go.dev/dl) and run again" >&2
		exit 1
	fi
fi

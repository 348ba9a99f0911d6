// Package hostinfo measures what a host offers to instances and finds
// its underlay address: the facts an agent reports when it joins and in
// its host status.
package hostinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
)

// MemoryReserveMiB is the memory kept back for the host itself and the
// agent when reporting capacity.
const MemoryReserveMiB = 256

// Capacity returns what this host offers to instances: runtime.NumCPU()
// vCPUs times overcommit, MemTotal from /proc/meminfo less
// MemoryReserveMiB, and the size (free plus used) of the filesystem
// holding dataDir in GiB.
func Capacity(dataDir string, overcommit float64) (api.Resources, error) {
	if overcommit <= 0 {
		return api.Resources{}, fmt.Errorf("capacity: overcommit %v must be positive", overcommit)
	}
	mem, err := memTotalMiB("/proc/meminfo")
	if err != nil {
		return api.Resources{}, err
	}
	disk, err := diskGiB(dataDir)
	if err != nil {
		return api.Resources{}, err
	}
	return api.Resources{
		VCPUs:     int(float64(runtime.NumCPU()) * overcommit),
		MemoryMiB: max(mem-MemoryReserveMiB, 0),
		DiskGiB:   disk,
	}, nil
}

// memTotalMiB reads MemTotal (in kB) from a meminfo file.
func memTotalMiB(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("capacity: %w", err)
	}
	return parseMemTotal(data)
}

func parseMemTotal(data []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "MemTotal:" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("capacity: MemTotal %q: %w", f[1], err)
		}
		return kb / 1024, nil
	}
	return 0, errors.New("capacity: no MemTotal in meminfo")
}

// diskGiB returns free plus used space of the filesystem holding dir.
func diskGiB(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("capacity: statfs %s: %w", dir, err)
	}
	used := st.Blocks - st.Bfree
	return int64((st.Bavail + used) * uint64(st.Bsize) >> 30), nil
}

// DefaultRouteAddress returns the first IPv4 address of the interface
// that carries the IPv4 default route, per /proc/net/route.
func DefaultRouteAddress() (string, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("find default route: %w", err)
	}
	ifname, err := defaultRouteInterface(data)
	if err != nil {
		return "", err
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", fmt.Errorf("default route interface %s: %w", ifname, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("default route interface %s has no IPv4 address", ifname)
}

// defaultRouteInterface parses /proc/net/route and returns the interface
// of the default route with the lowest metric.
func defaultRouteInterface(data []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	best, bestMetric := "", int64(-1)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		metric, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	if best == "" {
		return "", errors.New("no IPv4 default route: set the advertise address")
	}
	return best, nil
}

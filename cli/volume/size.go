package volume

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a size such as 10G, 512M, 1T or 4096 (bytes); the
// suffixes are binary (G = GiB) and an optional trailing "i" or "iB" is
// accepted.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: give a positive number with K, M, G or T, e.g. 10G", s)
	}
	return n * mult, nil
}

// FormatSize writes bytes the short way: 10G, 512M, or bytes.
func FormatSize(b int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if b >= u.mult && b%u.mult == 0 {
			return strconv.FormatInt(b/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}

// ParseInstanceVolume reads an instance's --volume: NAME (a data disk),
// NAME:boot (a VM's root disk) or NAME:/path (a container mount).
func ParseInstanceVolume(s string) (name string, boot bool, path string, err error) {
	name, rest, _ := strings.Cut(s, ":")
	switch {
	case name == "":
		return "", false, "", fmt.Errorf("volume %q: give NAME, NAME:boot or NAME:/path", s)
	case rest == "":
	case rest == "boot":
		boot = true
	case strings.HasPrefix(rest, "/"):
		path = rest
	default:
		return "", false, "", fmt.Errorf("volume %q: after the name give :boot or :/path", s)
	}
	return name, boot, path, nil
}

package hostinfo

import (
	"runtime"
	"testing"
)

func TestCapacity(t *testing.T) {
	r, err := Capacity(t.TempDir(), 2.5)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(float64(runtime.NumCPU()) * 2.5); r.VCPUs != want {
		t.Errorf("vcpus = %d, want %d", r.VCPUs, want)
	}
	if r.MemoryMiB <= 0 {
		t.Errorf("memory = %d MiB, want > 0", r.MemoryMiB)
	}
	if _, err := Capacity("/nonexistent/ouro", 1); err == nil {
		t.Error("Capacity of a missing dir succeeded")
	}
	if _, err := Capacity(t.TempDir(), 0); err == nil {
		t.Error("Capacity with overcommit 0 succeeded")
	}
}

func TestParseMemTotal(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"MemTotal:        8048576 kB\nMemFree: 1 kB\n", 7859, false},
		{"MemFree: 1 kB\nMemTotal: 1048576 kB\n", 1024, false},
		{"MemFree: 1 kB\n", 0, true},
		{"MemTotal: lots kB\n", 0, true},
	} {
		got, err := parseMemTotal([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseMemTotal(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDefaultRouteInterface(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tt := range []struct {
		name, table, want string
	}{
		{"one", header + "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth1"},
		{"none", header + "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", ""},
	} {
		got, err := defaultRouteInterface([]byte(tt.table))
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

package volume

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"10G", 10 << 30, false},
		{"10GiB", 10 << 30, false},
		{"512m", 512 << 20, false},
		{"1T", 1 << 40, false},
		{"4096", 4096, false},
		{"0", 0, true},
		{"-1G", 0, true},
		{"G", 0, true},
		{"ten", 0, true},
		{"99999999999T", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
	if FormatSize(10<<30) != "10G" || FormatSize(1536<<20) != "1536M" || FormatSize(1000) != "1000" {
		t.Fatal("FormatSize")
	}
}

func TestParseInstanceVolume(t *testing.T) {
	tests := []struct {
		in, name, path string
		boot, wantErr  bool
	}{
		{in: "data", name: "data"},
		{in: "root:boot", name: "root", boot: true},
		{in: "data:/var/lib/db", name: "data", path: "/var/lib/db"},
		{in: ":boot", wantErr: true},
		{in: "data:rw", wantErr: true},
	}
	for _, tt := range tests {
		name, boot, path, err := ParseInstanceVolume(tt.in)
		if (err != nil) != tt.wantErr || name != tt.name || boot != tt.boot || path != tt.path {
			t.Errorf("ParseInstanceVolume(%q) = %q %v %q %v", tt.in, name, boot, path, err)
		}
	}
}

func TestKeyringKey(t *testing.T) {
	kr := "[client.admin]\n\tkey = AQBhbG9uZ2tleQ==\n\tcaps mon = \"allow *\"\n"
	if got := KeyringKey([]byte(kr)); got != "AQBhbG9uZ2tleQ==" {
		t.Fatalf("key = %q", got)
	}
	if got := KeyringKey([]byte("[client.admin]\n")); got != "" {
		t.Fatalf("key of a keyring without one = %q", got)
	}
}

package daemon

import (
	"slices"
	"testing"
)

func TestLocalAPIPorts(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []uint16
	}{
		{"https://127.0.0.1:7443", []uint16{7443}},
		{"https://[::1]:9443", []uint16{9443}},
		{"https://127.0.0.1", []uint16{443}},
		{"https://192.0.2.77:7443", nil}, // TEST-NET-1: never this host's
		{"https://api.example:7443", nil},
		{"::not a url", nil},
	} {
		if got := localAPIPorts(tt.url); !slices.Equal(got, tt.want) {
			t.Errorf("localAPIPorts(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

package group

import (
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestParseHealth(t *testing.T) {
	for in, want := range map[string]api.HealthCheck{
		"running":         {Kind: "running"},
		"tcp:22":          {Kind: "tcp", Port: 22},
		"http:8080":       {Kind: "http", Port: 8080, Path: "/"},
		"http:80/healthz": {Kind: "http", Port: 80, Path: "/healthz"},
		"http:80/a/b?c=d": {Kind: "http", Port: 80, Path: "/a/b?c=d"},
		"lb:web":          {Kind: "loadBalancer", LoadBalancer: "web"},
	} {
		got, err := parseHealth(in)
		if err != nil || got != want {
			t.Errorf("parseHealth(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "RUNNING", "tcp:", "tcp:65536", "udp:53", "http:/x", "tcp:22/x", "lb:", "lb:Web"} {
		if _, err := parseHealth(bad); err == nil || !strings.Contains(err.Error(), "--health") {
			t.Errorf("parseHealth(%q) = %v, want an error naming --health", bad, err)
		}
	}
}

package loadbalancer

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestParseListen(t *testing.T) {
	for in, want := range map[string]api.Listener{
		"80":        {Protocol: "tcp", Port: 80, DefaultPool: DefaultPool},
		"80/tcp":    {Protocol: "tcp", Port: 80, DefaultPool: DefaultPool},
		"8080/http": {Protocol: "http", Port: 8080, DefaultPool: DefaultPool},
	} {
		if got, err := parseListen(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseListen(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65536", "http", "80/udp", "443/https", "80/"} {
		if _, err := parseListen(bad); err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("parseListen(%q) = %v, want an error naming --listen", bad, err)
		}
	}
}

func TestParseMonitor(t *testing.T) {
	for in, want := range map[string]api.HealthMonitor{
		"":              {},
		"tcp":           {},
		"http":          {Type: "http", Path: "/"},
		"http:/":        {Type: "http", Path: "/"},
		"http:/healthz": {Type: "http", Path: "/healthz"},
	} {
		if got, err := parseMonitor(in); err != nil || got != want {
			t.Errorf("parseMonitor(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"icmp", "http:healthz", "http:/a b", "tcp:80"} {
		if _, err := parseMonitor(bad); err == nil || !strings.Contains(err.Error(), "--health") {
			t.Errorf("parseMonitor(%q) = %v, want an error naming --health", bad, err)
		}
	}
}

func TestParseRule(t *testing.T) {
	for in, want := range map[string]api.ListenerRule{
		"host=a.example,pool=a":          {Host: "a.example", Pool: "a"},
		"path=/api,pool=api":             {PathPrefix: "/api", Pool: "api"},
		"host=a.example,path=/v2,pool=b": {Host: "a.example", PathPrefix: "/v2", Pool: "b"},
	} {
		if got, err := parseRule(in); err != nil || got != want {
			t.Errorf("parseRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "pool=a", "host=a", "path=api,pool=a", "port=80,pool=a", "host=,pool=a"} {
		if _, err := parseRule(bad); err == nil || !strings.Contains(err.Error(), "--rule") {
			t.Errorf("parseRule(%q) = %v, want an error naming --rule", bad, err)
		}
	}
}

func TestPoolFlags(t *testing.T) {
	f := poolFlags{instances: []string{"web-0", "web-1:5"}, port: 8080, health: "http:/", algorithm: api.AlgorithmSourceHash}
	got, err := f.pool("p")
	want := api.Pool{Name: "p", Port: 8080, Algorithm: api.AlgorithmSourceHash,
		Instances:     []api.PoolInstance{{Instance: "web-0"}, {Instance: "web-1", Weight: 5}},
		HealthMonitor: api.HealthMonitor{Type: "http", Path: "/"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("pool = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []poolFlags{
		{port: 80},
		{group: "g", instances: []string{"i"}, port: 80},
		{group: "g"},
		{group: "g", port: 80, algorithm: "random"},
		{instances: []string{"i:257"}, port: 80},
		{instances: []string{"I"}, port: 80},
	} {
		if _, err := bad.pool("p"); err == nil {
			t.Errorf("pool(%+v) was accepted", bad)
		}
	}
}

func TestDrainSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 0, time.Second: 1, 30 * time.Second: 30, time.Hour: 3600} {
		if got, err := drainSeconds(d); err != nil || got != want {
			t.Errorf("drainSeconds(%s) = %d, %v; want %d", d, got, err, want)
		}
	}
	for _, bad := range []time.Duration{time.Millisecond, 1500 * time.Millisecond, 2 * time.Hour, -time.Second} {
		if _, err := drainSeconds(bad); err == nil {
			t.Errorf("drainSeconds(%s) was accepted", bad)
		}
	}
}

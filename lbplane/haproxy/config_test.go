package haproxy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testcert"
)

func TestRender(t *testing.T) {
	pool := func(name, algo string, hm api.HealthMonitor, members ...api.HostLBMember) api.HostLBPool {
		return api.HostLBPool{Name: name, Algorithm: algo, HealthMonitor: hm, Members: members}
	}
	m1 := api.HostLBMember{Name: "u1", Address: "10.0.0.5", Port: 8080, Weight: 3}
	m2 := api.HostLBMember{Name: "u2", Address: "10.0.0.6", Port: 8080, Draining: true}
	for _, tc := range []struct {
		name      string
		lb        api.HostLoadBalancer
		want, not []string
		err       string
	}{{
		name: "tcp round robin, default monitor",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{{Protocol: "tcp", Port: 5432, DefaultPool: "db"}},
			Pools: []api.HostLBPool{pool("db", "", api.HealthMonitor{}, m1, m2)}},
		want: []string{
			"frontend l-tcp-5432\n    mode tcp\n    bind 10.0.0.100:5432\n    default_backend p-db-tcp\n",
			"backend p-db-tcp\n    mode tcp\n    balance roundrobin\n    timeout check 1000ms\n",
			"server m-u1 10.0.0.5:8080 weight 3 check inter 1000 fall 2 rise 2\n",
			"server m-u2 10.0.0.6:8080 weight 1 check",
			"option redispatch", "retries 3", "hard-stop-after 30s", "load-server-state-from-file global",
			"expose-fd listeners",
		},
		not: []string{"httpchk", "hash-type"},
	}, {
		name: "http rules, least connections, http check with a range",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", DrainTimeoutSeconds: 60, Listeners: []api.Listener{{Name: "web", Protocol: "http", Port: 80, DefaultPool: "www",
			Rules: []api.ListenerRule{{Host: "api.example.com", PathPrefix: "/v1", Pool: "api"}, {PathPrefix: "/static", Pool: "www"}}}},
			Pools: []api.HostLBPool{
				pool("www", "least-connections", api.HealthMonitor{Type: "http", Path: "/healthz", IntervalMillis: 500, TimeoutMillis: 300, Rise: 3, Fall: 4}),
				pool("api", "source-hash", api.HealthMonitor{Type: "http", ExpectedStatus: "204"}),
			}},
		want: []string{
			"acl r0_host req.hdr(host),field(1,:) -i api.example.com\n    acl r0_path path_beg /v1\n    use_backend p-api-http if r0_host r0_path\n",
			"acl r1_path path_beg /static\n    use_backend p-www-http if r1_path\n    default_backend p-www-http\n",
			"backend p-www-http\n    mode http\n    balance leastconn\n    timeout check 300ms\n    option httpchk GET /healthz\n    http-check expect rstatus ^(20[0-9]|21[0-9]|22[0-9]",
			"backend p-api-http\n    mode http\n    balance source\n    hash-type consistent\n    timeout check 1000ms\n    option httpchk GET /\n    http-check expect status 204\n",
			"hard-stop-after 60s", "option forwardfor",
		},
	}, {
		name: "a pool used by tcp and http listeners gets a backend per mode",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{
			{Protocol: "tcp", Port: 81, DefaultPool: "p"}, {Protocol: "http", Port: 80, DefaultPool: "p"}},
			Pools: []api.HostLBPool{pool("p", "", api.HealthMonitor{}, m1)}},
		want: []string{"backend p-p-http\n", "backend p-p-tcp\n", "default_backend p-p-tcp", "default_backend p-p-http"},
	}, {
		name: "https terminates TLS with the listener's pem",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{{Name: "tls", Protocol: "https", Port: 443, DefaultPool: "p", Certificate: "CERT", Key: "KEY"}},
			Pools: []api.HostLBPool{pool("p", "", api.HealthMonitor{})}},
		want: []string{"bind 10.0.0.100:443 ssl crt /lb/certs/tls.pem\n    option forwardfor\n"},
	}, {
		name: "user strings stay one word",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{{Name: "x y", Protocol: "http", Port: 80, DefaultPool: "p",
			Rules: []api.ListenerRule{{PathPrefix: "/a b#c\n", Pool: "p"}}}},
			Pools: []api.HostLBPool{pool("p", "", api.HealthMonitor{})}},
		want: []string{"frontend l-x_y\n", "path_beg /abc\n"},
	}, {
		name: "unknown pool",
		lb:   api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{{Protocol: "tcp", Port: 80, DefaultPool: "nope"}}},
		err:  `unknown pool "nope"`,
	}, {
		name: "unknown algorithm",
		lb: api.HostLoadBalancer{VIP: "10.0.0.100", Listeners: []api.Listener{{Protocol: "tcp", Port: 80, DefaultPool: "p"}},
			Pools: []api.HostLBPool{pool("p", "random", api.HealthMonitor{})}},
		err: `unknown algorithm "random"`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLayout(tc.lb, "/lb")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			members := map[string][]Member{}
			for _, p := range tc.lb.Pools {
				members[p.Name] = Members(p)
			}
			cfg := l.Render(members)
			for _, w := range tc.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("config lacks %q:\n%s", w, cfg)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(cfg, n) {
					t.Errorf("config has %q:\n%s", n, cfg)
				}
			}
			// Members are not part of the layout: no reload for them.
			if l.Hash() != mustLayout(t, withoutMembers(tc.lb)).Hash() {
				t.Error("the layout hash depends on members")
			}
		})
	}
}

func mustLayout(t *testing.T, lb api.HostLoadBalancer) *Layout {
	t.Helper()
	l, err := NewLayout(lb, "/lb")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func withoutMembers(lb api.HostLoadBalancer) api.HostLoadBalancer {
	pools := make([]api.HostLBPool, len(lb.Pools))
	for i, p := range lb.Pools {
		p.Members = nil
		pools[i] = p
	}
	lb.Pools = pools
	return lb
}

// TestRenderedConfigIsValid has HAProxy check a full configuration.
func TestRenderedConfigIsValid(t *testing.T) {
	if _, err := os.Stat(Binary); err != nil {
		t.Skip("no haproxy")
	}
	dir := t.TempDir()
	cert, key := testcert.Pair(t, "lb.test")
	lb := api.HostLoadBalancer{VIP: "127.0.0.1", Listeners: []api.Listener{
		{Name: "tls", Protocol: "https", Port: 18443, DefaultPool: "api", Certificate: cert, Key: key},
		{Protocol: "tcp", Port: 15432, DefaultPool: "db"},
		{Name: "web", Protocol: "http", Port: 18080, DefaultPool: "db", Rules: []api.ListenerRule{{Host: "a.example", PathPrefix: "/x", Pool: "api"}}},
	}, Pools: []api.HostLBPool{
		{Name: "db", Algorithm: "source-hash", Members: []api.HostLBMember{{Name: "u1", Address: "10.0.0.5", Port: 8080}}},
		{Name: "api", Algorithm: "least-connections", HealthMonitor: api.HealthMonitor{Type: "http", ExpectedStatus: "200-299"}},
	}}
	l, err := NewLayout(lb, dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Proxy{Dir: dir}
	if err := p.writeCerts(l.Certs); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, CertDir, "tls.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("pem file: %v %v", st.Mode(), err)
	}
	members := map[string][]Member{"db": Members(lb.Pools[0])}
	if err := check(filepath.Join(dir, "haproxy.cfg"), l.Render(members)); err != nil {
		t.Fatal(err)
	}

	// A bad certificate fails the check, before anything runs with it.
	lb.Listeners[0].Certificate = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
	l, _ = NewLayout(lb, dir)
	if err := p.writeCerts(l.Certs); err != nil {
		t.Fatal(err)
	}
	if err := check(filepath.Join(dir, "haproxy.cfg"), l.Render(members)); err == nil {
		t.Error("a bad certificate passed the check")
	}
}

func TestStatusRegexp(t *testing.T) {
	for _, tc := range []struct{ lo, hi int }{{200, 399}, {200, 200}, {204, 215}, {301, 302}, {100, 599}} {
		re := regexp.MustCompile(StatusRegexp(tc.lo, tc.hi))
		for code := 100; code <= 599; code++ {
			in := code >= tc.lo && code <= tc.hi
			if got := re.MatchString(strconv.Itoa(code)); got != in {
				t.Errorf("%d-%d: %s matches %d = %v", tc.lo, tc.hi, re, code, got)
			}
		}
	}
}

package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	c := Config{Name: "web 1", Address: "10.0.0.9", Peer: "10.0.0.8", VIP: "10.0.0.100", Prefix: 24,
		VRID: 51, Priority: 150, Track: "/run/ouro/x/lb/u1/haproxy.pid"}
	conf := c.Render("/run/ouro/x/lb/u1")
	for _, want := range []string{
		"vrrp_version 3\n",
		"vrrp_notify_fifo /run/ouro/x/lb/u1/notify.fifo\n",
		"vrrp_garp_master_delay 1\n",
		`script "/usr/bin/pgrep -f /run/ouro/x/lb/u1/haproxy.pid"`,
		"vrrp_instance web_1 {\n    state BACKUP\n    nopreempt\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 0.2\n",
		"unicast_src_ip 10.0.0.9\n    unicast_peer {\n        10.0.0.8\n    }\n",
		"virtual_ipaddress {\n        10.0.0.100/24 dev eth0\n    }\n",
		"track_script {\n        haproxy\n    }\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Skip("no keepalived")
	}
	if err := check(filepath.Join(t.TempDir(), "k.conf"), conf); err != nil {
		t.Error(err)
	}
	if err := check(filepath.Join(t.TempDir(), "k.conf"), conf+"\nvrrp_instance {\n    advert_int x\n}\n"); err == nil {
		t.Error("a bad configuration passed the check")
	}
}

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestVPCSubnetsReachEachOtherAcrossHosts: instances on two subnets of a
// VPC, on different hosts, reach each other both ways as their security
// groups allow, and see each other's real addresses; an instance of
// another VPC reaches neither, and neither reaches it.
func TestVPCSubnetsReachEachOtherAcrossHosts(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.ouro("vpc", "create", "prod", "--cidr", "10.60.0.0/16")
	nc.ouro("network", "create", "web", "--vpc", "prod", "--cidr", "10.60.1.0/24")
	nc.ouro("network", "create", "app", "--vpc", "prod", "--cidr", "10.60.2.0/24")
	nc.ouro("vpc", "create", "other", "--cidr", "10.70.0.0/16")
	nc.ouro("network", "create", "stray", "--vpc", "other", "--cidr", "10.70.1.0/24")
	// icmp from anywhere, so that only routing stands between VPCs;
	// tcp 8080 only from subnet web, 9090 from nowhere.
	nc.ouro("sg", "create", "icmp")
	nc.ouro("sg", "rule", "add", "icmp", "--protocol", "icmp", "--cidr", "0.0.0.0/0")
	nc.ouro("sg", "create", "from-web")
	nc.ouro("sg", "rule", "add", "from-web", "--protocol", "tcp", "--port", "8080", "--cidr", "10.60.1.0/24")
	serve := []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www"}

	nc.createOn("h1", vm{name: "front", network: "web", groups: []string{"icmp"}})
	nc.createOn("h2", vm{name: "back", network: "app", groups: []string{"icmp", "from-web"}, command: serve})
	nc.createOn("h1", vm{name: "intruder", network: "stray", groups: []string{"icmp"}})
	front := nc.checkInterface("", "front", "web", "10.60.1.0/24")
	back := nc.checkInterface("", "back", "app", "10.60.2.0/24")
	intruder := nc.checkInterface("", "intruder", "stray", "10.70.1.0/24")
	nc.waitApplied()

	nc.waitPing("", "front", back.IP)
	nc.waitPing("", "back", front.IP)
	// TCP through the security group that admits subnet web only: the
	// rule sees front's own address (no NAT between subnets).
	wait.ForDetail(t, 30*time.Second, "front fetching from back:8080", func() (bool, string) {
		out, err := nc.exec("", "front", wgetArgv(back.IP+":8080")...)
		return err == nil && strings.TrimSpace(out) == "back", fmt.Sprintf("%v: %s", err, out)
	})
	if out, err := nc.exec("", "front", wgetArgv(back.IP+":9090")...); err == nil {
		t.Errorf("front fetched back:9090, which no rule opens: %q", out)
	}

	// Another VPC: no route either way, though icmp is allowed.
	nc.neverPing("", "intruder", back.IP)
	nc.neverPing("", "intruder", front.IP)
	nc.neverPing("", "front", intruder.IP)
	nc.neverPing("", "back", intruder.IP)

	// A tenant cannot put a network in another project's VPC, nor
	// overlap a subnet, nor delete a VPC with subnets.
	nc.ouro("project", "create", "mallory")
	if msg := nc.fails("network", "create", "x", "--project", "mallory", "--vpc", "prod", "--cidr", "10.60.3.0/24"); !strings.Contains(strings.ToLower(msg), "not found") {
		t.Errorf("network in another project's VPC: %s, want not found", msg)
	}
	if msg := nc.fails("network", "create", "x", "--vpc", "prod", "--cidr", "10.60.2.128/25"); !strings.Contains(msg, "overlaps") {
		t.Errorf("overlapping subnet: %s", msg)
	}
	if msg := nc.fails("vpc", "delete", "prod"); !strings.Contains(strings.ToLower(msg), "in use") {
		t.Errorf("deleting a VPC with subnets: %s", msg)
	}
}

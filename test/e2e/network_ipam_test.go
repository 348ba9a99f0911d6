package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// IPAM and validation are the server's: these tests need no host, so
// their instances stay Pending with the addresses they got at create.

// createOnNetwork creates an instance on network through the API.
func createOnNetwork(cl *client.Client, name, network string) (*api.Instance, error) {
	in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "default"},
		Spec: api.InstanceSpec{Image: "busybox", Flavor: "tiny", Command: []string{"sleep", "3600"},
			Networks: []api.NetworkAttachment{{Network: network}}}}
	_, err := cl.Create(context.Background(), in, client.CreateOptions{})
	return in, err
}

// addressesOf returns the IP of every instance of the default project on
// network, failing on an instance without one.
func addressesOf(t *testing.T, c *cloud, network string) map[string]string {
	t.Helper()
	items, _, err := client.ListAll[api.Instance](context.Background(), c.clientAs(c.admin), api.InstanceKind, "default", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, in := range items {
		for _, ifc := range in.Status.Interfaces {
			if ifc.Network == network {
				ips[in.Metadata.Name] = ifc.IP
			}
		}
	}
	return ips
}

func TestConcurrentCreatesGetDistinctAddressesUntilTheNetworkIsFull(t *testing.T) {
	c := newCloud(t)
	c.importBusybox()
	const cidr = "10.60.0.0/26"
	c.ouro("network", "create", "small", "--cidr", cidr)
	prefix := netip.MustParsePrefix(cidr)
	gateway := prefix.Addr().Next()
	// 64 addresses less the network, gateway and broadcast addresses.
	const usable = 61
	cl := c.clientAs(c.admin)

	createAll := func(names []string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = createOnNetwork(cl, name, "small")
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent create of %s: %v", names[i], err)
			}
		}
	}
	checkDistinct := func(want int) map[string]string {
		t.Helper()
		ips := addressesOf(t, c, "small")
		if len(ips) != want {
			t.Fatalf("%d instances with an address on small, want %d", len(ips), want)
		}
		owner := map[string]string{}
		for name, s := range ips {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil || !prefix.Contains(a):
				t.Errorf("%s got %q, outside %s", name, s, cidr)
			case a == prefix.Addr() || a == gateway || a == netip.MustParseAddr("10.60.0.63"):
				t.Errorf("%s got the reserved address %s", name, a)
			case owner[s] != "":
				t.Errorf("%s and %s both got %s", owner[s], name, s)
			}
			owner[s] = name
		}
		return ips
	}

	var first []string
	for i := range 50 {
		first = append(first, fmt.Sprintf("c-%d", i))
	}
	createAll(first)
	checkDistinct(50)

	var rest []string
	for i := 50; i < usable; i++ {
		rest = append(rest, fmt.Sprintf("c-%d", i))
	}
	createAll(rest)
	checkDistinct(usable)

	// One more does not fit, says why, and leaves nothing behind.
	_, errOut, err := c.run(nil, "instance", "create", "one-too-many", "--image", "busybox", "--flavor", "tiny", "--network", "small")
	if err == nil {
		t.Fatalf("a create in the full network succeeded")
	}
	if msg := strings.ToLower(errOut); !strings.Contains(msg, "small") || !strings.Contains(msg, "address") {
		t.Errorf("the error of a create in a full network does not say so: %q", errOut)
	}
	if _, err := c.instance("default", "one-too-many"); !api.IsNotFound(err) {
		t.Errorf("the refused create left an instance: %v", err)
	}
	if n := len(addressesOf(t, c, "small")); n != usable {
		t.Errorf("%d addresses in use after a refused create, want %d", n, usable)
	}

	// Deleting frees the addresses: all of them can be had again.
	for _, name := range append(first, rest...) {
		if err := cl.Delete(context.Background(), api.InstanceKind, "default", name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	wait.ForDetail(t, 60*time.Second, "instances on small gone", func() (bool, string) {
		n := len(addressesOf(t, c, "small"))
		return n == 0, fmt.Sprintf("%d left", n)
	})
	c.ouro("instance", "create", "again", "--image", "busybox", "--flavor", "tiny", "--network", "small")
	again, err := c.instance("default", "again")
	if err != nil || len(again.Status.Interfaces) == 0 {
		t.Fatalf("again: %v %+v", err, again.Status)
	}
	var refill []string
	for i := 1; i < usable; i++ {
		refill = append(refill, fmt.Sprintf("d-%d", i))
	}
	createAll(refill)
	checkDistinct(usable)
}

func TestBadNetworkInputIsRefusedAndChangesNothing(t *testing.T) {
	c := newCloud(t)
	c.ouro("network", "create", "app", "--cidr", "10.50.0.0/24")
	c.ouro("sg", "create", "web")
	c.ouro("sg", "rule", "add", "web", "--protocol", "tcp", "--port", "80", "--cidr", "0.0.0.0/0")
	snapshot := func() string {
		t.Helper()
		return c.ouro("network", "list", "-o", "json") + c.ouro("sg", "get", "web", "-o", "json")
	}
	before := snapshot()

	// Through the CLI, as a user types it.
	for _, tc := range []struct {
		name    string
		args    []string
		mention string
	}{
		{"overlapping CIDR", []string{"network", "create", "app2", "--cidr", "10.50.0.128/25"}, "overlap"},
		{"overlapping the default network", []string{"network", "create", "app3", "--cidr", "172.31.4.0/24"}, "overlap"},
		{"gateway outside the CIDR", []string{"network", "create", "app4", "--cidr", "10.51.0.0/24", "--gateway", "10.52.0.1"}, "gateway"},
		{"port 70000", []string{"sg", "rule", "add", "web", "--protocol", "tcp", "--port", "70000", "--cidr", "0.0.0.0/0"}, "port"},
		{"unknown protocol", []string{"sg", "rule", "add", "web", "--protocol", "gre", "--cidr", "0.0.0.0/0"}, "protocol"},
	} {
		t.Run("cli/"+tc.name, func(t *testing.T) {
			out, errOut, err := c.run(nil, tc.args...)
			if err == nil {
				t.Fatalf("ouro %s succeeded: %s", strings.Join(tc.args, " "), out)
			}
			if !strings.Contains(strings.ToLower(errOut), strings.ToLower(tc.mention)) {
				t.Errorf("ouro %s: error does not mention %q: %s", strings.Join(tc.args, " "), tc.mention, errOut)
			}
		})
	}

	// Straight to the API, past the CLI's own checks: the server refuses
	// too, naming the field.
	cl := c.clientAs(c.admin)
	for _, tc := range []struct {
		name, path string
		body       string
		field      string
	}{
		{"overlapping CIDR", "/v1/projects/default/networks", `{"metadata":{"name":"x1"},"spec":{"cidr":"10.50.0.0/16"}}`, "spec.cidr"},
		{"gateway outside the CIDR", "/v1/projects/default/networks", `{"metadata":{"name":"x2"},"spec":{"cidr":"10.53.0.0/24","gateway":"10.54.0.1"}}`, "spec.gateway"},
		{"port 70000", "/v1/projects/default/securitygroups/web/rules", `{"direction":"ingress","protocol":"tcp","portMin":70000,"portMax":70000,"cidr":"0.0.0.0/0"}`, "port"},
		{"unknown protocol", "/v1/projects/default/securitygroups/web/rules", `{"direction":"ingress","protocol":"gre","cidr":"0.0.0.0/0"}`, "protocol"},
	} {
		t.Run("api/"+tc.name, func(t *testing.T) {
			status, err := cl.Do(context.Background(), http.MethodPost, tc.path, nil, json.RawMessage(tc.body), nil)
			if err == nil {
				t.Fatalf("POST %s %s: status %d, want an error", tc.path, tc.body, status)
			}
			if s := api.StatusOf(err); s != http.StatusBadRequest && s != http.StatusConflict {
				t.Errorf("POST %s: status %d, want 400 or 409: %v", tc.path, s, err)
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Message == "" || !strings.Contains(strings.ToLower(ae.Field+" "+ae.Message), strings.ToLower(tc.field)) {
				t.Errorf("POST %s: error %v does not name %q", tc.path, err, tc.field)
			}
		})
	}

	if after := snapshot(); after != before {
		t.Errorf("refused requests changed networks or rules:\nbefore %s\nafter %s", before, after)
	}
}

// Package probe runs the health checks of instances: a TCP connect or an
// HTTP GET to an instance address, dialled from inside a network
// namespace (on a host, the router namespace of the instance's network,
// from where every instance address of the network is reachable).
//
// A socket belongs to the network namespace of the thread that created
// it, and keeps it for its life. Dial therefore creates the connection on
// a goroutine locked to an OS thread switched into the namespace
// (netns.Do); once connected, the connection is used from any goroutine.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// Defaults of a health check's numbers (api.HealthCheck).
const (
	DefaultInterval         = 2 * time.Second
	DefaultTimeout          = time.Second
	DefaultFailureThreshold = 3
)

// Interval returns the time between probes of hc.
func Interval(hc api.HealthCheck) time.Duration {
	if hc.IntervalSeconds > 0 {
		return time.Duration(hc.IntervalSeconds) * time.Second
	}
	return DefaultInterval
}

// Timeout returns the time one probe of hc may take.
func Timeout(hc api.HealthCheck) time.Duration {
	if hc.TimeoutSeconds > 0 {
		return time.Duration(hc.TimeoutSeconds) * time.Second
	}
	return DefaultTimeout
}

// FailureThreshold returns how many failed probes in a row make an
// instance unhealthy.
func FailureThreshold(hc api.HealthCheck) int {
	if hc.FailureThreshold > 0 {
		return hc.FailureThreshold
	}
	return DefaultFailureThreshold
}

// Probes reports whether hc needs probing (kind tcp or http); kind running
// (or none) follows the instance's phase.
func Probes(hc *api.HealthCheck) bool {
	return hc != nil && (hc.Kind == api.HealthTCP || hc.Kind == api.HealthHTTP)
}

// Dialer returns a dial function whose sockets are created in the network
// namespace at nsPath (the caller's namespace when empty).
func Dialer(nsPath string, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := netns.Do(nsPath, func() error {
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, err
		}
		return conn, nil
	}
}

// Check runs one probe of hc against ip from the network namespace at
// nsPath, within hc's timeout. It returns nil when the instance passes:
// kind tcp accepts a connection on the port, kind http answers GET of
// the path with a status from 200 to 399.
func Check(ctx context.Context, nsPath, ip string, hc api.HealthCheck) error {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("probe: instance address %q: %w", ip, err)
	}
	if hc.Port < 1 || hc.Port > 65535 {
		return fmt.Errorf("probe: port %d is out of range", hc.Port)
	}
	target := net.JoinHostPort(addr.String(), strconv.Itoa(hc.Port))
	timeout := Timeout(hc)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := Dialer(nsPath, timeout)
	switch hc.Kind {
	case api.HealthTCP:
		conn, err := dial(ctx, "tcp", target)
		if err != nil {
			return fmt.Errorf("tcp probe of %s: %w", target, err)
		}
		conn.Close()
		return nil
	case api.HealthHTTP:
		return checkHTTP(ctx, dial, target, hc.Path)
	}
	return fmt.Errorf("probe: kind %q cannot be probed", hc.Kind)
}

// checkHTTP gets path from target with one connection and no redirects.
func checkHTTP(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), target, path string) error {
	if path == "" {
		path = "/"
	}
	u := "http://" + target + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	req.Header.Set("User-Agent", "ouro-health-probe")
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	cl := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := cl.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the URL
		}
		return fmt.Errorf("http probe of %s: %w", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("http probe of %s: status %s", u, resp.Status)
	}
	return nil
}

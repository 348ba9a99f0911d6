package hollow

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/pki"
)

// What a hollow host tells the server about itself. The address is
// loopback and the agent endpoint is in the reserved .invalid domain, so
// nothing the server might send to a hollow host's agent ever leaves the
// machine.
const (
	hollowAddress = "127.0.0.1"
	agentVersion  = "hollow"
)

// Retry back-off of calls that failed for reasons that may pass.
const (
	firstDelay = 200 * time.Millisecond
	maxDelay   = 30 * time.Second
)

// host is one hollow host.
type host struct {
	f    *fleet
	name string

	// joinMu makes joins of the host one at a time.
	joinMu sync.Mutex
	mu     sync.Mutex
	token  string
	cl     *client.Client

	// known is the latest version of each instance the host has seen or
	// written, by project/name. Only the watch goroutine uses it.
	known map[string]*api.Instance
}

// errFatal marks errors that retrying cannot cure.
var errFatal = errors.New("cannot continue")

// start makes host name usable: with its stored credentials when it has
// some that the server accepts, else by joining. It retries what may pass
// until ctx ends.
func (f *fleet) start(ctx context.Context, name string) (*host, error) {
	h := &host{f: f, name: name, known: map[string]*api.Instance{}}
	creds, err := loadCredentials(f.dir, name)
	if err != nil {
		if f.cfg.JoinToken == "" {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
		f.log.Warn("hollow host credentials unusable; joining again", "host", name, "err", err)
		creds = nil
	}
	if creds != nil {
		if err := h.setToken(creds.Token); err != nil {
			return nil, err
		}
		err := h.retry(ctx, "report host status", h.reportHost)
		if err == nil {
			return h, nil
		}
		if api.StatusOf(err) != http.StatusUnauthorized {
			return nil, err
		}
		f.log.Info("stored hollow host credentials refused; joining again", "host", name)
	}
	if err := h.retry(ctx, "join", h.join); err != nil {
		return nil, err
	}
	return h, nil
}

// retry calls fn until it succeeds, fails for good (errFatal or an API
// answer other than 5xx, 429 or a conflict) or ctx ends.
func (h *host) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	for delay := firstDelay; ; delay = min(2*delay, maxDelay) {
		err := h.f.call(ctx, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return fmt.Errorf("host %s: %s: %w", h.name, what, err)
		}
		h.f.log.Debug("hollow host call failed; retrying", "host", h.name, "call", what, "err", err, "in", delay)
		if !sleep(ctx, jitter(delay)) {
			return ctx.Err()
		}
	}
}

// retryable reports whether err may pass: transport errors, 5xx, 429 and
// conflicts.
func retryable(err error) bool {
	if errors.Is(err, errFatal) {
		return false
	}
	var e *api.Error
	if !errors.As(err, &e) {
		return true
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusConflict
}

// setToken switches the host to a new bearer token.
func (h *host) setToken(token string) error {
	cl, err := client.New(client.Config{Server: h.f.cfg.Server, Token: token, HTTPClient: h.f.hc,
		UserAgent: "ouro-hollow/" + h.name})
	if err != nil {
		return fmt.Errorf("host %s: %w: %w", h.name, errFatal, err)
	}
	h.mu.Lock()
	h.token, h.cl = token, cl
	h.mu.Unlock()
	return nil
}

// client returns the host's current client and the token it carries.
func (h *host) client() (*client.Client, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cl, h.token
}

// join registers the host with the join token and stores its new token.
// Joining again under the same name gives the same Host object new
// credentials, so a crash between the join and the save makes no second
// host.
func (h *host) join(ctx context.Context) error {
	cfg := h.f.cfg
	if cfg.JoinToken == "" {
		return fmt.Errorf("no credentials in %s and no join token: %w", h.f.dir, errFatal)
	}
	_, csr, err := pki.NewKeyAndCSR(pki.AgentCNPrefix+h.name, []string{hollowAddress, h.name})
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	anon, err := client.New(client.Config{Server: cfg.Server, HTTPClient: h.f.hc, UserAgent: "ouro-hollow/" + h.name})
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	resp, err := anon.Join(ctx, cfg.JoinToken, api.JoinRequest{
		Name:          h.name,
		Address:       hollowAddress,
		AgentEndpoint: "https://" + h.name + ".hollow.invalid:7444",
		CSR:           string(csr),
		Capacity:      cfg.Capacity,
		Architecture:  runtime.GOARCH,
		Drivers:       Drivers,
		AgentVersion:  agentVersion,
		Labels:        map[string]string{api.LabelHollow: "true"},
		Taints:        []string{api.TaintHollow},
	})
	if err != nil {
		return err
	}
	if resp.Token == "" {
		return fmt.Errorf("the join answer has no token: %w", errFatal)
	}
	if err := checkHollow(&resp.Host); err != nil {
		return err
	}
	if err := saveCredentials(h.f.dir, credentials.Credentials{Server: cfg.Server, Host: h.name, Token: resp.Token}); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	h.f.log.Debug("hollow host joined", "host", h.name)
	return h.setToken(resp.Token)
}

// checkHollow refuses to act as a host that is not marked hollow: a real
// host of the same name would otherwise get workloads that never run.
func checkHollow(hst *api.Host) error {
	if hst.Metadata.Labels[api.LabelHollow] != "true" || !slices.Contains(hst.Spec.Taints, api.TaintHollow) {
		return fmt.Errorf("host %s exists without the label %s=true and the taint %s: it is not a hollow host; choose another name prefix: %w",
			hst.Metadata.Name, api.LabelHollow, api.TaintHollow, errFatal)
	}
	return nil
}

// reportHost makes the host's status say what this run offers (after a
// restart with other settings) and checks that the host is hollow.
func (h *host) reportHost(ctx context.Context) error {
	cl, _ := h.client()
	var hst api.Host
	if err := cl.Get(ctx, api.HostKind, "", h.name, &hst); err != nil {
		return err
	}
	if err := checkHollow(&hst); err != nil {
		return err
	}
	s := &hst.Status
	if s.Capacity == h.f.cfg.Capacity && slices.Equal(s.Drivers, Drivers) && s.Architecture == runtime.GOARCH &&
		s.AgentVersion == agentVersion && s.Address == hollowAddress {
		return nil
	}
	s.Capacity, s.Drivers, s.Architecture, s.AgentVersion, s.Address =
		h.f.cfg.Capacity, Drivers, runtime.GOARCH, agentVersion, hollowAddress
	return cl.UpdateStatus(ctx, &hst)
}

// rejoin joins again after the server refused token, unless another
// goroutine of the host did so already.
func (h *host) rejoin(ctx context.Context, token string) {
	if h.f.cfg.JoinToken == "" {
		return
	}
	h.joinMu.Lock()
	defer h.joinMu.Unlock()
	if _, cur := h.client(); cur != token {
		return
	}
	if err := h.retry(ctx, "join again", h.join); err != nil && ctx.Err() == nil {
		h.f.log.Error("hollow host cannot join again", "host", h.name, "err", err)
	}
}

// heartbeatLoop renews the host's presence every HeartbeatInterval,
// starting at a random point of the first interval so that many hosts
// spread their heartbeats evenly.
func (h *host) heartbeatLoop(ctx context.Context) {
	cfg := h.f.cfg
	if !sleep(ctx, rand.N(cfg.HeartbeatInterval)) {
		return
	}
	t := time.NewTicker(cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		cl, token := h.client()
		// Not through the fleet's slots: a real host's heartbeat waits for
		// no other host's calls, and heartbeats queued behind a thousand
		// hosts' status writes would make the control plane see hosts
		// lost that are not (each host has one heartbeat in flight at
		// most, and their starts are spread over the interval). Bounded
		// as the agent bounds its own.
		hctx, cancel := context.WithTimeout(ctx, cfg.HeartbeatInterval+cfg.LeaseTTL)
		err := cl.Heartbeat(hctx, h.name, cfg.LeaseTTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failing {
				h.f.log.Info("hollow host heartbeat recovered", "host", h.name)
			}
			failing = false
		default:
			if !failing {
				h.f.log.Warn("hollow host heartbeat failed", "host", h.name, "err", err)
			}
			failing = true
			if api.StatusOf(err) == http.StatusUnauthorized {
				h.rejoin(ctx, token)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns d plus up to a quarter of it, so that hosts that failed
// together do not retry together.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/4+1) }

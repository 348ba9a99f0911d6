package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// hostResync is how often the host status is compared and rewritten if
// something drifted (a backstop; it is written at start and after a join).
const hostResync = 5 * time.Minute

// hostLoop reports the host status at start, retrying until it succeeds,
// and again every hostResync.
func (a *Agent) hostLoop(ctx context.Context) {
	delay := time.Second
	for {
		wait := hostResync
		if err := a.reportHost(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("report host status", "err", err, "retry_in", delay)
			wait, delay = delay, min(2*delay, time.Minute)
		} else {
			delay = time.Second
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// reportHost writes the agent's part of the host status with a
// read-modify-write that keeps what the host controller owns (phase,
// conditions) and what the scheduler owns (allocated). It writes only when
// something changed.
func (a *Agent) reportHost(ctx context.Context) error {
	f := a.hostFacts()
	for attempt := 0; ; attempt++ {
		cl := a.sess.Client()
		var h api.Host
		if err := cl.Get(ctx, api.HostKind, "", f.name, &h); err != nil {
			return fmt.Errorf("read host %s: %w", f.name, err)
		}
		before, err := json.Marshal(h.Status)
		if err != nil {
			return fmt.Errorf("encode host status: %w", err)
		}
		h.Status.Address = f.address
		h.Status.AgentEndpoint = f.endpoint
		h.Status.Capacity = f.capacity
		h.Status.Drivers = slices.Clone(f.drivers)
		h.Status.Architecture = f.arch
		h.Status.AgentVersion = Version
		h.Status.AgentStartTime = a.started
		after, err := json.Marshal(h.Status)
		if err != nil {
			return fmt.Errorf("encode host status: %w", err)
		}
		if string(before) == string(after) {
			return nil
		}
		err = cl.UpdateStatus(ctx, &h)
		if err == nil {
			a.log.Debug("host status reported")
			return nil
		}
		if !api.IsConflict(err) || attempt >= 5 {
			return fmt.Errorf("update host %s status: %w", f.name, err)
		}
	}
}

// heartbeatLoop renews the host's presence every HeartbeatInterval. Failures
// are logged and never stop it; a refused host token makes the agent join
// again when it has a join token.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		sent := time.Now()
		hctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatInterval+a.cfg.LeaseTTL)
		err := a.sess.Client().Heartbeat(hctx, a.name(), a.cfg.LeaseTTL)
		cancel()
		switch {
		case err == nil:
			if failing {
				a.log.Info("heartbeat recovered")
			}
			failing = false
			if a.fence.Beat(sent) {
				a.unfence(ctx)
			}
		case ctx.Err() != nil:
			return
		default:
			if !failing {
				a.log.Warn("heartbeat failed", "err", err)
			} else {
				a.log.Debug("heartbeat failed", "err", err)
			}
			failing = true
			if api.StatusOf(err) == http.StatusUnauthorized {
				a.rejoin(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

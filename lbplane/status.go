package lbplane

import (
	"fmt"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/lbplane/haproxy"
	"github.com/ouroboros-cloud/ouro/lbplane/keepalived"
)

// status reads what one load balancer's processes say about it.
func (m *Manager) status(lb api.HostLoadBalancer, applyErr error) api.HostLBStatus {
	st := api.HostLBStatus{UID: lb.UID}
	ns := m.cfg.NetNSPath(lb.UID)
	hp := m.proxy(lb.UID)
	var servers []haproxy.Server
	switch _, running := hp.Running(); {
	case applyErr != nil:
		st.Message = applyErr.Error()
	case !running:
		st.Message = "haproxy is not running"
	default:
		var err error
		if servers, err = hp.Runtime().Servers(); err != nil {
			st.Message = err.Error()
		} else {
			st.Ready = true
		}
	}
	if lb.Peer != "" {
		if _, ok := m.keepalived(lb.UID).Running(); !ok && st.Ready {
			st.Ready, st.Message = false, "keepalived is not running"
		}
		// FAULT: its check of HAProxy fails; this host cannot take the
		// VIP over.
		if state := m.vrrpState(lb.UID); state == "FAULT" && st.Ready {
			st.Ready, st.Message = false, "keepalived is in FAULT state"
		}

	}
	if active, err := keepalived.HasVIP(ns, lb.VIP); err == nil {
		st.Active = active
	} else if st.Message == "" {
		st.Message = fmt.Sprintf("vip: %v", err)
	}
	// A backup whose HAProxy was just (re)started cannot take the VIP
	// over before keepalived has checked it (it may still be in FAULT).
	if lb.Peer != "" && !st.Active && st.Ready && !m.settled(lb.UID) {
		st.Ready, st.Message = false, "keepalived has yet to check the restarted haproxy"
	}
	for _, p := range lb.Pools {
		var backends []string
		for _, mode := range []string{"tcp", "http"} {
			backends = append(backends, haproxy.BackendName(p.Name, mode))
		}
		sessions := haproxy.Sessions(servers, backends)
		for _, mb := range p.Members {
			name := haproxy.ServerName(mb.Name)
			ms := api.HostLBMemberStatus{Pool: p.Name, Name: mb.Name, Health: api.HealthUnknown}
			if mb.Draining {
				ms.Sessions = sessions[name]
			}
			for _, s := range servers {
				if s.Name == name && (s.Backend == backends[0] || s.Backend == backends[1]) {
					ms.Health = haproxy.Health(s.Status)
					break
				}
			}
			ms.Drained = mb.Draining && st.Ready && ms.Sessions == 0
			st.Members = append(st.Members, ms)
		}
	}
	return st
}

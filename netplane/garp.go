package netplane

import (
	"net/netip"

	"github.com/ouroboros-cloud/ouro/garp"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// sendGratuitousARP announces ip at the underlay device's MAC on the
// underlay, from a packet socket opened in the host namespace.
func (p *Plane) sendGratuitousARP(h *hostNS, ip netip.Addr) error {
	a := h.underlay.Attrs()
	return netns.Do(p.cfg.HostNetNS, func() error { return garp.Send(a.Index, a.HardwareAddr, ip) })
}

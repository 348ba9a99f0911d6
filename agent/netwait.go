package agent

import (
	"context"

	"github.com/ouroboros-cloud/ouro/api"
)

// waitNetwork is the reconcile of an instance whose ports are not applied
// yet: the network loop queues it again once they are. When one of its
// networks could not be set up, the instance says so (reason
// NetworkUnavailable, in its Ready condition too) and an event records
// it, once per new message.
func (r *instanceRun) waitNetwork(ctx context.Context) error {
	msg, held := r.a.ports.HeldBack(r.inst.Metadata.UID)
	if !held {
		return nil
	}
	wrote, err := r.update(ctx, func(s *api.InstanceStatus) {
		s.Reason, s.Message = api.ReasonNetworkUnavailable, msg
	})
	if err != nil {
		return err
	}
	if wrote {
		r.a.event(ctx, r.inst, api.EventWarning, api.ReasonNetworkUnavailable, msg)
	}
	return nil
}

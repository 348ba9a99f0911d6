package volumes

import (
	"hash/fnv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Owner returns the host that keeps the data of a volume (or of a
// snapshot of it) whose backend id is volumeID: the host a local volume
// lives on (volumeHost), and for a volume without a host (ceph) one of
// the Ready hosts chosen by rendezvous hashing of the id. Every agent
// computes the same answer from the same list without talking to the
// others; when the chosen host is lost another takes over, and a host
// that joins takes over only the volumes it now wins. While the agents'
// lists of hosts differ (for a moment) two may both work on a volume:
// every backend call is idempotent, and a status write of an older read
// fails on its version. Hollow hosts, which keep no data, are left out,
// and so are hosts Ready for less than Settle while others have been
// Ready longer: a host back from being lost may still be fenced off the
// shared pools (the controller lets it back after it was Ready for a
// while), and its control calls would fail until then.
func Owner(volumeHost, volumeID string, hosts []api.Host) string {
	return owner(volumeHost, volumeID, hosts, time.Now())
}

// Settle is how long a host must have been Ready to own host-less
// volumes, when some host has been.
const Settle = 45 * time.Second

func owner(volumeHost, volumeID string, hosts []api.Host, now time.Time) string {
	if volumeHost != "" {
		return volumeHost
	}
	settled := false
	for i := range hosts {
		if eligible(&hosts[i]) && readyFor(&hosts[i], now) >= Settle {
			settled = true
			break
		}
	}
	best, bestScore := "", uint64(0)
	for i := range hosts {
		h := &hosts[i]
		if !eligible(h) || settled && readyFor(h, now) < Settle {
			continue
		}
		f := fnv.New64a()
		f.Write([]byte(volumeID))
		f.Write([]byte{0})
		f.Write([]byte(h.Metadata.Name))
		score := f.Sum64()
		if best == "" || score > bestScore || score == bestScore && h.Metadata.Name < best {
			best, bestScore = h.Metadata.Name, score
		}
	}
	return best
}

// eligible reports whether h may own volumes: Ready, and not hollow.
func eligible(h *api.Host) bool {
	return h.Status.Phase == api.HostReady && h.Metadata.Labels[api.LabelHollow] == ""
}

// readyFor returns how long h has been Ready; a host without the time
// counts as settled.
func readyFor(h *api.Host, now time.Time) time.Duration {
	c := api.FindCondition(h.Status.Conditions, api.ConditionReady)
	if c == nil || c.LastTransitionTime.IsZero() {
		return Settle
	}
	return now.Sub(c.LastTransitionTime)
}

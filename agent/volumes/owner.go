package volumes

import (
	"hash/fnv"

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
// fails on its version. Hollow hosts, which keep no data, are left out.
func Owner(volumeHost, volumeID string, hosts []api.Host) string {
	if volumeHost != "" {
		return volumeHost
	}
	best, bestScore := "", uint64(0)
	for i := range hosts {
		h := &hosts[i]
		if h.Status.Phase != api.HostReady || h.Metadata.Labels[api.LabelHollow] != "" {
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

package store

import (
	"errors"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Transient reports whether err is etcd saying it could not take the
// request right now — no leader, a leader change, a dropped proposal, a
// request timed out during an election — rather than refusing it. The
// write did not happen or, for a timeout, may have; either way the same
// request may be sent again (creates carry an idempotency key), so the
// API answers 503 and clients retry.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) && ee.Code() == codes.Unavailable {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		if st.Code() == codes.Unavailable {
			return true
		}
		// etcd sends a proposal dropped during a leader change as
		// codes.Unknown, with only its text to go by.
		if st.Code() == codes.Unknown && strings.Contains(st.Message(), "proposal dropped") {
			return true
		}
	}
	return strings.Contains(err.Error(), "raft proposal dropped")
}
